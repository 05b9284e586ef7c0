/** Classifies image files that need not belong to the project, writing path, class and confidence as CSV. */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { scanImages, type ScanProblem } from '../../media/scan.ts';
import type { Project } from '../../store/project.ts';
import { initBackend } from '../runtime/backend.ts';
import { decodePixels } from './dataset.ts';
import { inferenceBatch } from './inference.ts';
import { runClassifier } from '../simclr/model.ts';
import { loadTrainedClassifier } from '../stages/stage_common.ts';
import type { BackendChoice } from '../../contract/train_options.ts';

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Writes a file through a temporary name, so a crash never leaves half a file under the real one. */
export function writeFileAtomically(file: string, contents: string | Buffer): void {
  const temp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temp, contents);
  fs.renameSync(temp, file);
}

export async function predictFiles(
  project: Project,
  runId: number,
  paths: string[],
  outFile: string,
  backend: BackendChoice = 'auto',
): Promise<{ count: number; problems: ScanProblem[] }> {
  await initBackend(backend);
  const { model, classes, architecture } = loadTrainedClassifier(project, runId);
  try {
    const { files, problems } = await scanImages(paths);
    const lines = ['path,predicted,confidence'];
    const batch = inferenceBatch(architecture.imageSize);
    for (let start = 0; start < files.length; start += batch) {
      const decoded: { path: string; pixels: Buffer }[] = [];
      for (const file of files.slice(start, start + batch)) {
        try {
          decoded.push({ path: file.path, pixels: await decodePixels(file.path, architecture.imageSize) });
        } catch (error) {
          problems.push({ path: file.path, reason: (error as Error).message });
        }
      }
      if (decoded.length === 0) continue;
      const probabilities = tf.tidy(() => {
        const size = architecture.imageSize;
        const bytes = Buffer.concat(decoded.map((d) => d.pixels));
        const images = tf.div(tf.tensor4d(new Uint8Array(bytes), [decoded.length, size, size, 3], 'int32'), 255) as tf.Tensor4D;
        return tf.softmax(runClassifier(model, images, false).logits);
      });
      const rows = (await probabilities.array()) as number[][];
      probabilities.dispose();
      rows.forEach((p, i) => {
        const best = p.indexOf(Math.max(...p));
        lines.push(`${csvField(decoded[i].path)},${csvField(classes[best].name)},${p[best].toFixed(6)}`);
      });
    }
    writeFileAtomically(outFile, lines.join('\n') + '\n');
    return { count: lines.length - 1, problems };
  } finally {
    model.dispose();
  }
}
