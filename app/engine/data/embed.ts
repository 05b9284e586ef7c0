/**
 * `contrast embed`: the encoder features (the pooled output every stage's network shares) of any
 * image files, from any finished run, as CSV rows `path,f0,f1,…` for use elsewhere. The pixels
 * are decoded as training decodes them, and any input normalisation is inside the network.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendChoice } from '../../contract/train_options.ts';
import { UserError } from '../../contract/errors.ts';
import { scanImages, type ScanProblem } from '../../media/scan.ts';
import type { Project } from '../../store/project.ts';
import { requireRun } from '../../store/runs.ts';
import { initBackend } from '../runtime/backend.ts';
import { buildPretrainModel, type ModelConfig } from '../simclr/model.ts';
import { loadRunModel, loadTrainedClassifier } from '../stages/stage_common.ts';
import type { TrainConfig } from '../stages/stage_config.ts';
import { decodePixels } from './dataset.ts';
import { inferenceBatch } from './inference.ts';
import { writeFileAtomically } from './predict.ts';

/** The layer whose output is the encoder's features in every network we build. */
const FEATURES_LAYER = 'encoder_pool';

/** A finished run's whole network (pretraining or classifier) and the configuration it was built from. */
function loadRunNetwork(project: Project, runId: number): { model: tf.LayersModel; architecture: ModelConfig } {
  const run = requireRun(project.db, runId);
  if (run.kind === 'finetune' || run.kind === 'distill') return loadTrainedClassifier(project, runId);
  if (run.kind !== 'pretrain') throw new UserError(`run ${runId} is a ${run.kind} run, which has no network of its own`, 'no_model');
  if (run.status !== 'done') throw new UserError(`run ${runId} is ${run.status}, not done: it has no finished network`, 'no_model');
  const architecture = (run.config as unknown as TrainConfig).model;
  const model = buildPretrainModel(architecture);
  try {
    loadRunModel(project, runId, model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, architecture };
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

async function decodeBatch(paths: string[], size: number, problems: ScanProblem[]): Promise<{ path: string; pixels: Buffer }[]> {
  const decoded: { path: string; pixels: Buffer }[] = [];
  for (const file of paths) {
    try {
      decoded.push({ path: file, pixels: await decodePixels(file, size) });
    } catch (error) {
      problems.push({ path: file, reason: (error as Error).message });
    }
  }
  return decoded;
}

export async function embedFiles(
  project: Project,
  runId: number,
  paths: string[],
  outFile: string,
  backend: BackendChoice = 'auto',
): Promise<{ count: number; features: number; problems: ScanProblem[] }> {
  await initBackend(backend);
  const { model, architecture } = loadRunNetwork(project, runId);
  const encoder = tf.model({ inputs: model.inputs, outputs: model.getLayer(FEATURES_LAYER).output as tf.SymbolicTensor });
  try {
    const { files, problems } = await scanImages(paths);
    const width = encoder.outputs[0].shape[1]!;
    const lines = [['path', ...Array.from({ length: width }, (_, i) => `f${i}`)].join(',')];
    const size = architecture.imageSize;
    const batch = inferenceBatch(size);
    for (let start = 0; start < files.length; start += batch) {
      const decoded = await decodeBatch(files.slice(start, start + batch).map((f) => f.path), size, problems);
      if (decoded.length === 0) continue;
      const features = tf.tidy(() => {
        const bytes = new Uint8Array(Buffer.concat(decoded.map((d) => d.pixels)));
        const images = tf.div(tf.tensor4d(bytes, [decoded.length, size, size, 3], 'int32'), 255);
        return encoder.predict(images) as tf.Tensor2D;
      });
      const rows = (await features.array()) as number[][];
      features.dispose();
      rows.forEach((row, i) => lines.push(`${csvField(decoded[i].path)},${row.join(',')}`));
    }
    writeFileAtomically(outFile, lines.join('\n') + '\n');
    return { count: lines.length - 1, features: width, problems };
  } finally {
    model.dispose();
  }
}
