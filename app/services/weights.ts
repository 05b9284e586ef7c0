/**
 * Networks from outside the project and features for use outside it: a pretrained ResNet file
 * imported as a finished pretrain run (`contrast import-weights`, the studio's "Start from a
 * pretrained network…"), any run's encoder features of any image files (`contrast embed`), and
 * a training program for a GPU cluster whose weights come back through the import (`contrast export-trainer`).
 */
import path from 'node:path';
import { UserError } from '../contract/errors.ts';
import type { ImportedWeights } from '../contract/operations.ts';
import type { BackendChoice } from '../contract/train_options.ts';
import { embedFiles } from '../engine/data/embed.ts';
import { exportTrainer, type TrainerExport } from '../engine/trainer/export_trainer.ts';
import { describeNetwork, importNetwork } from '../engine/weights/import_network.ts';
import type { Project } from '../store/project.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';
import { checkSettings } from './train_options.ts';

export interface WeightsRequest {
  file: string;
  /** resnet18, resnet34 or resnet50: the network the file must hold. */
  arch?: string;
  imageSize?: number;
  name?: string;
}

export async function importWeights(project: Project, request: WeightsRequest): Promise<ImportedWeights> {
  const { depth, imageSize } = checkSettings({ depth: request.arch, imageSize: request.imageSize });
  const imported = await importNetwork(project, { file: request.file, depth: depth as 18 | 34 | 50 | undefined, imageSize, name: request.name });
  const ignored = Object.values(imported.report.ignored).reduce((a, b) => a + b, 0);
  return {
    runId: imported.runId,
    kind: imported.kind,
    name: imported.source.name,
    network: describeNetwork(imported.model),
    layout: imported.source.layout,
    format: imported.source.format,
    keys: { mapped: imported.report.mapped, ignored, outside: imported.report.outside },
    headLayers: imported.report.headLayers,
    sha256: imported.source.sha256,
  };
}

export interface TrainerRequest {
  outDir: string;
  copyImages?: boolean;
  runId?: number;
  arch?: string;
  width?: number;
  imageSize?: number;
  seed?: number;
  warn?: (message: string) => void;
}

/** Writes the folder that trains the project on a cluster: manifest, pixels, program and README. */
export function exportClusterTrainer(project: Project, request: TrainerRequest): Promise<TrainerExport> {
  if (request.runId !== undefined && (request.arch ?? request.width ?? request.imageSize) !== undefined) {
    throw new UserError('the network comes from the run given: leave out arch, width and size', 'bad_setting', { name: 'runId' });
  }
  const options = checkSettings({ depth: request.arch, width: request.width, imageSize: request.imageSize, seed: request.seed });
  return exportTrainer(project, { outDir: path.resolve(request.outDir), copyImages: request.copyImages ?? false, runId: request.runId, options, warn: request.warn });
}

/** Writes `path,f0,f1,…` rows of a finished run's encoder features for image files or folders. */
export function embedOutsideFiles(project: Project, runId: number, paths: string[], outFile: string, backend: BackendChoice) {
  return embedFiles(project, runId, paths, outFile, backend);
}

export function weightsHandlers(session: Session): Pick<Handlers, 'weights.import'> {
  return {
    async 'weights.import'({ path: file, arch, imageSize, name }) {
      if (!path.isAbsolute(file)) throw new UserError(`give the full path of the weights file (got "${file}")`, 'bad_path', { path: file });
      return importWeights(session.requireProject(), { file, arch, imageSize, name });
    },
  };
}
