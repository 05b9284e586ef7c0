/**
 * The self-describing parts of an export folder: labels.json (classes, input, preprocessing and
 * the run the model came from), model.onnx with the same facts in its metadata, and a README.md
 * for whoever receives the folder.
 */
import path from 'node:path';
import type { Run } from '../../store/runs.ts';
import type { ModelConfig } from '../simclr/resnet.ts';
import { writeFileAtomically } from '../data/predict.ts';
import { bundleReadme } from './bundle_readme.ts';
import { ONNX_INPUT, ONNX_OUTPUT, preprocessingFor, type Preprocessing } from './preprocessing.ts';

export interface BundleLabels {
  classes: string[];
  classIds: number[];
  input: { name: string; shape: [null, number, number, 3]; description: string; preprocessing: Preprocessing };
  output: string;
  runId: number;
  kind: string;
  architecture: ModelConfig;
  /** From the run's summary; null where the run had no validation images. */
  metrics: { valAccuracy: number | null; valImages: number | null; trainImages: number | null; epochs: number | null };
  trainedAt: string | null;
  exportedAt: string;
}

function summaryNumber(run: Run, key: string): number | null {
  const value = run.summary?.[key];
  return typeof value === 'number' ? value : null;
}

export function bundleLabels(run: Run, classes: { id: number; name: string }[], architecture: ModelConfig, exportedAt: Date): BundleLabels {
  const size = architecture.imageSize;
  return {
    classes: classes.map((c) => c.name),
    classIds: classes.map((c) => c.id),
    input: {
      name: ONNX_INPUT,
      shape: [null, size, size, 3],
      description: 'float32 RGB in [0, 1], NHWC: the largest centred square of the image, resized to the input size',
      preprocessing: preprocessingFor(size),
    },
    output: `${ONNX_OUTPUT}: one per class in the order of "classes"`,
    runId: run.id,
    kind: run.kind,
    architecture,
    metrics: {
      valAccuracy: summaryNumber(run, 'valAccuracy'),
      valImages: summaryNumber(run, 'valImages'),
      trainImages: summaryNumber(run, 'trainImages'),
      epochs: summaryNumber(run, 'epochs'),
    },
    trainedAt: run.finishedAt,
    exportedAt: exportedAt.toISOString(),
  };
}

/** ONNX metadata_props: strings only, so structured values are JSON. */
export function onnxMetadata(labels: BundleLabels): Record<string, string> {
  return {
    classes: JSON.stringify(labels.classes),
    input_name: labels.input.name,
    input_layout: labels.input.preprocessing.layout,
    input_shape: JSON.stringify(labels.input.shape),
    preprocessing: JSON.stringify(labels.input.preprocessing),
    output_name: ONNX_OUTPUT,
    run_id: String(labels.runId),
    run_kind: labels.kind,
    architecture: JSON.stringify(labels.architecture),
    metrics: JSON.stringify(labels.metrics),
    trained_at: labels.trainedAt ?? '',
    exported_at: labels.exportedAt,
  };
}

export function writeBundleDescription(folder: string, labels: BundleLabels, onnxModel: Uint8Array): void {
  writeFileAtomically(path.join(folder, 'model.onnx'), Buffer.from(onnxModel.buffer, onnxModel.byteOffset, onnxModel.byteLength));
  writeFileAtomically(path.join(folder, 'labels.json'), JSON.stringify(labels, null, 2) + '\n');
  writeFileAtomically(path.join(folder, 'README.md'), bundleReadme(labels));
}
