/**
 * Opens a weights file of any format this version reads, told apart by content rather than by
 * name: a PyTorch zip (.pth/.pt), .safetensors, or our TF.js export (model.json or its folder).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../contract/errors.ts';
import type { ModelConfig } from '../simclr/resnet.ts';
import { ByteReader } from './byte_reader.ts';
import { readSafetensors } from './safetensors.ts';
import type { SourceTensor } from './source_tensors.ts';
import { readTfjsModel } from './tfjs_model.ts';
import { readTorchCheckpoint } from './torch_checkpoint.ts';
import { parseTrainerMetadata, type TrainerMetadata } from './trainer_metadata.ts';
import { looksLikeZip } from './zip.ts';

export type WeightsFormat = 'pytorch' | 'safetensors' | 'tfjs';

export interface CheckpointFile {
  format: WeightsFormat;
  /** The file the weights were read from (model.json for a TF.js folder). */
  file: string;
  /** Every file read: the one file, or model.json and its weight files. */
  files: string[];
  tensors: Map<string, SourceTensor>;
  /**
   * What our own exports say about their network beyond the weights: a TF.js export its
   * architecture and layers, the exported trainer's .safetensors its stage, network and classes.
   */
  hints: { architecture: ModelConfig | null; layers: string[]; inputSize: number | null; trainer: TrainerMetadata | null };
  close(): void;
}

/** The pickle protocol-2 opening that torch.save wrote before its zip format (PyTorch < 1.6). */
function isLegacyTorch(head: Buffer): boolean {
  return head[0] === 0x80 && head[1] === 0x02;
}

function isSafetensors(reader: ByteReader): boolean {
  if (reader.size < 10) return false;
  const head = reader.read(0, 9);
  return Number(head.readBigUInt64LE(0)) < reader.size && head[8] === 0x7b; // '{'
}

function modelJsonOf(target: string): string | null {
  if (target.endsWith('.json')) return target;
  const inside = path.join(target, 'model.json');
  return fs.statSync(target, { throwIfNoEntry: false })?.isDirectory() && fs.existsSync(inside) ? inside : null;
}

export function openCheckpoint(target: string): CheckpointFile {
  const file = path.resolve(target);
  if (!fs.existsSync(file)) throw new UserError(`no such file: ${file}`, 'weights_unreadable', { file });
  const modelJson = modelJsonOf(file);
  if (modelJson) {
    const model = readTfjsModel(modelJson);
    const hints = { architecture: model.architecture, layers: model.layers, inputSize: model.inputSize, trainer: null };
    return { format: 'tfjs', file: modelJson, files: model.files, tensors: model.tensors, hints, close: model.close };
  }
  const reader = ByteReader.open(file);
  try {
    const hints = { architecture: null, layers: [], inputSize: null, trainer: null };
    const opened = { file, files: [file], hints, close: () => reader.close() };
    if (looksLikeZip(reader)) return { format: 'pytorch', tensors: readTorchCheckpoint(reader), ...opened };
    if (isSafetensors(reader)) {
      const { tensors, metadata } = readSafetensors(reader);
      return { format: 'safetensors', tensors, ...opened, hints: { ...hints, trainer: parseTrainerMetadata(metadata, file) } };
    }
    if (reader.size >= 2 && isLegacyTorch(reader.read(0, 2))) {
      throw new UserError(`${file} was saved in PyTorch's legacy format (before 1.6); load it in PyTorch and save it again with torch.save, or as .safetensors`, 'weights_unsupported', { file });
    }
    throw new UserError(`${file} is not a weights file this version reads (.safetensors, a PyTorch .pth/.pt, or a TF.js model.json)`, 'weights_unsupported', { file });
  } catch (error) {
    reader.close();
    throw error;
  }
}
