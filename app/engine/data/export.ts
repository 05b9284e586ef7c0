/**
 * Exports a trained classifier as a TF.js layers model (model.json + weights.bin) that plain
 * @tensorflow/tfjs loads with tf.loadLayersModel, plus labels.json describing its input and classes.
 * The exported model ends in a softmax, so it outputs class probabilities.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Project } from '../../store/project.ts';
import { initBackend } from '../runtime/backend.ts';
import { writeFileAtomically } from './predict.ts';
import { loadTrainedClassifier } from '../stages/stage_common.ts';

function joinWeights(data: ArrayBuffer | ArrayBuffer[]): Buffer {
  return Buffer.concat((Array.isArray(data) ? data : [data]).map((part) => Buffer.from(part)));
}

export async function exportModel(project: Project, runId: number, outDir: string): Promise<string> {
  await initBackend('auto');
  const { model, classes, architecture, run } = loadTrainedClassifier(project, runId);
  try {
    const probabilities = tf.layers.activation({ activation: 'softmax', name: 'probabilities' }).apply(model.outputs[0]) as tf.SymbolicTensor;
    const exported = tf.model({ inputs: model.inputs, outputs: probabilities, name: `contrast_run_${runId}` });
    const target = path.resolve(outDir);
    fs.mkdirSync(target, { recursive: true });
    await exported.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const manifest = {
          format: 'layers-model',
          generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
          convertedBy: null,
          modelTopology: artifacts.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
        };
        writeFileAtomically(path.join(target, 'weights.bin'), joinWeights(artifacts.weightData!));
        writeFileAtomically(path.join(target, 'model.json'), JSON.stringify(manifest));
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const labels = {
      classes: classes.map((c) => c.name),
      classIds: classes.map((c) => c.id),
      input: {
        shape: [null, architecture.imageSize, architecture.imageSize, 3],
        description: 'float32 RGB in [0, 1]: the largest centred square of the image, resized to the input size',
      },
      output: 'probabilities, one per class in the order of "classes"',
      runId,
      kind: run.kind,
      architecture,
    };
    writeFileAtomically(path.join(target, 'labels.json'), JSON.stringify(labels, null, 2) + '\n');
    return target;
  } finally {
    model.dispose();
  }
}
