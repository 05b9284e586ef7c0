/**
 * Exports a trained classifier as a self-describing folder: a TF.js layers model (model.json +
 * weights.bin) that plain @tensorflow/tfjs loads with tf.loadLayersModel, the same network as
 * model.onnx, labels.json and a README.md (app/engine/export/bundle.ts). Both models end in a
 * softmax, so they output class probabilities.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Project } from '../../store/project.ts';
import { initBackend } from '../runtime/backend.ts';
import { bundleLabels, onnxMetadata, writeBundleDescription } from './bundle.ts';
import { onnxModelBytes } from './onnx_export.ts';
import { writeFileAtomically } from '../data/predict.ts';
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
    const labels = bundleLabels(run, classes, architecture, new Date());
    // Converted before anything is written, so a model ONNX cannot express leaves no half folder.
    const onnxModel = onnxModelBytes(exported, onnxMetadata(labels), `Contrast Studio classifier from run ${runId} (${run.kind})`);
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
    writeBundleDescription(target, labels, onnxModel);
    return target;
  } finally {
    model.dispose();
  }
}
