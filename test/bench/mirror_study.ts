/**
 * What averaging each image with its mirror image buys one trained network: the held-out accuracy
 * of a project's model (the current one unless a run is named) on one view and on both, on the same
 * files, so the difference is paired. Held-out files sit in one folder per class, as the label
 * study lays them out.
 *
 *   node --import tsx test/bench/mirror_study.ts <project> <held-out folder> [run]
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { pixelsFromBytes } from '../../app/engine/data/dataset.ts';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { classifyImages, runClassifier } from '../../app/engine/simclr/model.ts';
import { loadTrainedClassifier } from '../../app/engine/stages/stage_common.ts';
import { currentModelRunId } from '../../app/services/current_model.ts';
import { openProject } from '../../app/store/project.ts';

const BATCH = 250;
const [projectDir, heldOut, runArg] = process.argv.slice(2);
const project = openProject(projectDir, { readonly: true });
await initBackend('auto');
const runId = runArg ? Number(runArg) : currentModelRunId(project.db)!;
const { model, classes, architecture } = loadTrainedClassifier(project, runId);
const files = fs.readdirSync(heldOut).sort().flatMap((name) => fs.readdirSync(path.join(heldOut, name)).sort().map((file) => ({ file: path.join(heldOut, name, file), name })));

let oneView = 0;
let bothViews = 0;
for (let start = 0; start < files.length; start += BATCH) {
  const batch = files.slice(start, start + BATCH);
  const pixels = await Promise.all(batch.map(({ file }) => pixelsFromBytes(fs.readFileSync(file), architecture.imageSize)));
  const [plain, averaged] = tf.tidy(() => {
    const images = tf.div(tf.tensor4d(new Uint8Array(Buffer.concat(pixels)), [batch.length, architecture.imageSize, architecture.imageSize, 3], 'int32'), 255) as tf.Tensor4D;
    return [tf.argMax(runClassifier(model, images, false).logits, 1).arraySync(), tf.argMax(classifyImages(model, images).logits, 1).arraySync()] as number[][];
  });
  batch.forEach(({ name }, i) => {
    if (classes[plain[i]].name === name) oneView++;
    if (classes[averaged[i]].name === name) bothViews++;
  });
}
console.log(JSON.stringify({ runId, images: files.length, oneView: oneView / files.length, withMirror: bothViews / files.length }));
