/** What leaves the project: labels, predictions and models (predictions for outside files: folder_predictions.ts). */
import path from 'node:path';
import { UserError } from '../contract/errors.ts';
import { exportModel } from '../engine/export/model_bundle.ts';
import { writePredictionsCsv } from '../store/gallery.ts';
import type { Project } from '../store/project.ts';
import { modelRun } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import { countLabels, exportLabels } from './labels.ts';
import type { Session } from './session.ts';

/** Writes a model (default: the current one) into `outDir`; returns the folder and the run it came from. */
export async function exportModelOf(project: Project, outDir: string | null, runId?: number): Promise<{ path: string; runId: number }> {
  const run = modelRun(project.db, runId);
  const folder = outDir ?? path.join(project.exportsDir, `model-run${run.id}`);
  return { path: await exportModel(project, run.id, folder), runId: run.id };
}

/** The time as 20250101-120000, for names of files and folders written on request. */
export function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function exportHandlers(session: Session): Pick<Handlers, 'export.labels' | 'export.predictions' | 'export.model'> {
  const project = () => session.requireProject();
  return {
    async 'export.labels'({ format, withAuthor }) {
      const labelled = countLabels(project());
      if (labelled === 0) throw new UserError('there are no labels to export yet', 'nothing_to_export');
      const target = format === 'csv' ? project().exportsDir : path.join(project().exportsDir, `labels-by-class-${timestamp()}`);
      const { path: written, written: count, missing } = exportLabels(project(), format, target, withAuthor);
      if (missing.length > 0 && count === 0) throw new UserError(`none of the labelled files could be copied (first missing: ${missing[0]})`, 'originals_missing', { missing });
      return { path: written, count, skipped: missing.slice(0, 100) };
    },
    async 'export.predictions'({ runId }) {
      const run = modelRun(project().db, runId);
      const file = path.join(project().exportsDir, `predictions-run${run.id}.csv`);
      return { path: file, count: writePredictionsCsv(project().db, run.id, file) };
    },
    async 'export.model'({ runId }) {
      const { path: folder } = await exportModelOf(project(), null, runId);
      return { path: folder, count: 1 };
    },
  };
}
