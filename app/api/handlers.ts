/**
 * One async function per contract operation: validated input in, output out. Transports
 * (HTTP, Electron IPC) validate with the contract's schemas, then call these.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import {
  embeddingLabels,
  fileProblems,
  heldOutPredictions,
  imageDetail,
  imagesByIds,
  latestEmbeddingRunId,
  latestPredictionRunId,
  listImageIds,
  listImages,
  writePredictionsCsv,
} from '../store/gallery.ts';
import { exportModel } from '../engine/export.ts';
import { importPaths } from '../media/import.ts';
import { exportLabelFolders, exportLabelsCsv } from '../store/labels_csv.ts';
import { addClass, deleteClass, listClasses, mergeClasses, renameClass, setEachLabel, setLabels, type ClassInfo } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { getRun, isResumable, latestDoneRun, listRuns, metricNames, metricSeries, requireRun, runLineage, type Run } from '../store/runs.ts';
import type { Input, OperationName, Output, ProjectStatus, RunInfo } from './contract.ts';
import { embeddingMap } from './embedding_map.ts';
import { score } from '../engine/metrics.ts';
import { chooseNext } from './label_queue.ts';
import { backendSummary, planRequest, resumeTraining, startTraining } from './training.ts';
import { openSampleProject } from './sample_project.ts';
import type { Session } from './session.ts';

export type Handlers = { [N in OperationName]: (input: Input<N>) => Promise<Output<N>> };

/** The author recorded on labels set through the studio. */
const AUTHOR = 'studio';

export function createHandlers(session: Session): Handlers {
  const db = () => session.requireProject().db;
  const classes = () => ({ classes: listClasses(db()) });
  const changedLabels = () => session.emit({ type: 'labels.changed' });

  return {
    async 'project.status'() {
      return status(session);
    },
    async 'projects.recent'() {
      return { projects: session.recentProjects() };
    },
    async 'projects.create'({ dir }) {
      session.open(requireAbsolute(dir), true);
      return status(session);
    },
    async 'projects.open'({ dir }) {
      session.open(requireAbsolute(dir));
      return status(session);
    },
    async 'projects.openSample'() {
      await openSampleProject(session);
      return status(session);
    },
    async 'projects.close'() {
      session.close();
      return status(session);
    },

    async 'import.start'({ paths, labelsFromFolders, testSet }) {
      const project = session.requireProject();
      const roots = paths.map(requireExistingPath);
      const controller = new AbortController();
      const release = session.beginJob({ kind: 'import', id: 0, startedAt: new Date().toISOString() }, () => controller.abort());
      importPaths(project, roots, {
        labelsFromFolders,
        testSet,
        signal: controller.signal,
        onProgress: (progress) => session.emit({ type: 'import.progress', ...progress }),
      })
        .then((summary) => {
          const { problems: _problems, ...counts } = summary;
          session.emit({ type: 'import.finished', summary: counts, error: null });
        })
        .catch((error) => {
          if (!(error instanceof UserError)) console.error('import failed:', error);
          session.emit({ type: 'import.finished', summary: null, error: String(error?.message ?? error) });
        })
        .finally(() => {
          release();
          session.emit({ type: 'labels.changed' });
        });
      return { started: true as const };
    },
    async 'import.cancel'() {
      return { cancelled: session.cancelJob('import') };
    },
    async 'import.problems'({ status: which, batchId }) {
      return { problems: fileProblems(db(), which, batchId) };
    },

    async 'images.list'({ filter, sort, offset, limit }) {
      const runId = latestPredictionRunId(db());
      return { ...listImages(db(), filter, sort, runId, offset, limit), offset, predictionRunId: runId };
    },
    async 'images.ids'({ filter, sort }) {
      return { ids: listImageIds(db(), filter, sort, latestPredictionRunId(db())) };
    },
    async 'images.get'({ imageId }) {
      const runId = latestPredictionRunId(db());
      const detail = imageDetail(db(), imageId, runId, runId ? runClassIds(db(), runId) : []);
      if (!detail) throw new UserError(`no image ${imageId} in this project`, 'not_found');
      return detail;
    },

    async 'labels.set'({ imageIds, classId }) {
      if (classId !== null) requireClassId(db(), classId);
      requireImages(session.requireProject(), imageIds);
      const changes = setLabels(db(), imageIds, classId, 'human', AUTHOR);
      changedLabels();
      return { changes, ...classes() };
    },
    async 'labels.restore'({ changes }) {
      const project = session.requireProject();
      requireImages(project, changes.map((c) => c.imageId));
      setEachLabel(project.db, changes, 'human', AUTHOR);
      changedLabels();
      return classes();
    },
    async 'predictions.accept'({ imageIds }) {
      const runId = latestPredictionRunId(db());
      if (!runId) throw new UserError('there are no predictions yet: fine-tune a model first', 'no_predictions');
      const items = imagesByIds(db(), imageIds, runId).filter((item) => item.predictedClassId !== null);
      if (items.length === 0) throw new UserError('none of these images has a prediction', 'no_predictions');
      const changes = setEachLabel(db(), items.map((item) => ({ imageId: item.id, classId: item.predictedClassId })), 'suggestion', AUTHOR);
      changedLabels();
      return { changes, ...classes() };
    },
    async 'classes.list'() {
      return classes();
    },
    async 'classes.add'({ name }) {
      const classId = addClass(db(), name);
      changedLabels();
      return { classId, ...classes() };
    },
    async 'classes.rename'({ classId, name }) {
      renameClass(db(), requireClassId(db(), classId).name, name);
      changedLabels();
      return classes();
    },
    async 'classes.merge'({ classId, intoClassId }) {
      const moved = mergeClasses(db(), requireClassId(db(), classId).name, requireClassId(db(), intoClassId).name);
      changedLabels();
      return { moved, ...classes() };
    },
    async 'classes.delete'({ classId }) {
      const removed = deleteClass(db(), requireClassId(db(), classId).name);
      changedLabels();
      return { removed, ...classes() };
    },
    async 'queue.next'({ limit }) {
      const predictionRunId = latestPredictionRunId(db());
      const choice = chooseNext(db(), limit, predictionRunId, latestEmbeddingRunId(db()));
      return { strategy: choice.strategy, runId: predictionRunId, items: imagesByIds(db(), choice.imageIds, predictionRunId) };
    },

    async 'train.plan'(request) {
      return planRequest(session.requireProject(), request);
    },
    async 'train.start'(request) {
      return { runId: startTraining(session, request, session.launcher) };
    },
    async 'train.cancel'({ runId }) {
      const run = requireRun(db(), runId);
      if (session.activeJob?.id === runId && session.activeJob.kind === run.kind) return { cancelled: session.cancelJob() };
      if (run.status === 'running') throw new UserError(`run ${runId} is running in another process; cancel it there`, 'busy');
      return { cancelled: false };
    },
    async 'train.resume'({ runId }) {
      return { runId: resumeTraining(session, runId, session.launcher) };
    },
    async 'runs.list'() {
      return { runs: listRuns(db()).map(runInfo) };
    },
    async 'runs.get'({ runId }) {
      const run = requireRun(db(), runId);
      const metrics = metricNames(db(), runId).map((name) => ({
        name,
        points: metricSeries(db(), runId, name).map((p) => [p.step, p.epoch, p.value] as [number, number, number]),
      }));
      return { run: runInfo(run), lineage: runLineage(db(), runId).map(runInfo), metrics };
    },
    async 'system.backend'() {
      return backendSummary();
    },

    async 'results.evaluation'({ runId }) {
      const run = runWithPredictions(db(), runId);
      const allClasses = listClasses(db());
      const { split, rows } = heldOutPredictions(db(), run.id);
      if (rows.length === 0) {
        throw new UserError(`run ${run.id} has no predictions for labelled ${split} images to score`, 'no_predictions');
      }
      const scores = score(rows, allClasses);
      const teacherRun = run.kind === 'distill' && run.parentId ? getRun(db(), run.parentId) : undefined;
      let teacher = null;
      if (teacherRun) {
        // Score the teacher on exactly the student's images, so the two numbers compare.
        const ids = new Set(rows.map((r) => r.imageId));
        const teacherRows = heldOutPredictions(db(), teacherRun.id).rows.filter((r) => ids.has(r.imageId));
        if (teacherRows.length > 0) {
          const teacherScores = score(teacherRows, allClasses);
          teacher = { runId: teacherRun.id, accuracy: teacherScores.accuracy, perClass: teacherScores.perClass };
        }
      }
      return { runId: run.id, kind: run.kind, split, images: rows.length, ...scores, teacher };
    },
    async 'results.cellImages'({ runId, trueClassId, predictedClassId }) {
      const run = runWithPredictions(db(), runId);
      const ids = heldOutPredictions(db(), run.id)
        .rows.filter((r) => r.labelClassId === trueClassId && r.predictedClassId === predictedClassId)
        .map((r) => r.imageId);
      return { items: imagesByIds(db(), ids, run.id) };
    },
    async 'results.embeddingMap'({ runId }) {
      const project = session.requireProject();
      const mapRunId = runId ?? latestEmbeddingRunId(project.db);
      if (!mapRunId) throw new UserError('no run has computed embeddings yet: pretrain or fine-tune first', 'no_embeddings');
      requireRun(project.db, mapRunId);
      const positions = await embeddingMap(project, mapRunId);
      const labels = embeddingLabels(project.db, mapRunId, latestPredictionRunId(project.db));
      const points = positions.map((p) => ({ ...p, labelClassId: null, predictedClassId: null, ...labels.get(p.imageId) }));
      return { runId: mapRunId, points };
    },

    async 'export.labels'({ format }) {
      const project = session.requireProject();
      const labelled = project.db.prepare('SELECT COUNT(*) FROM labels').pluck().get() as number;
      if (labelled === 0) throw new UserError('there are no labels to export yet', 'nothing_to_export');
      if (format === 'csv') return { path: exportLabelsCsv(project.db, project.exportsDir), count: labelled };
      const folder = path.join(project.exportsDir, `labels-by-class-${timestamp()}`);
      const { written, missing } = exportLabelFolders(project.db, folder);
      if (missing.length > 0 && written === 0) throw new UserError(`none of the labelled files could be copied (first missing: ${missing[0]})`);
      return { path: folder, count: written };
    },
    async 'export.predictions'({ runId }) {
      const project = session.requireProject();
      const run = runWithPredictions(project.db, runId);
      const file = path.join(project.exportsDir, `predictions-run${run.id}.csv`);
      return { path: file, count: writePredictionsCsv(project.db, run.id, file) };
    },
    async 'export.model'({ runId }) {
      const project = session.requireProject();
      const run = runId ? requireRun(project.db, runId) : latestDoneRun(project.db, ['distill', 'finetune']);
      if (!run) throw new UserError('there is no trained classifier to export yet: fine-tune a model first', 'no_model');
      const folder = path.join(project.exportsDir, `model-run${run.id}`);
      await exportModel(project, run.id, folder);
      return { path: folder, count: 1 };
    },
  };
}

/** Paths from the UI must be full: a relative one would depend on where the server was started. */
function requireAbsolute(given: string): string {
  if (!path.isAbsolute(given)) throw new UserError(`give the full path of the folder (got "${given}")`);
  return given;
}

function requireExistingPath(given: string): string {
  if (!fs.existsSync(requireAbsolute(given))) throw new UserError(`no such file or folder: ${given}`, 'not_found');
  return given;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

function status(session: Session): ProjectStatus {
  const project = session.project;
  if (!project) return { project: null, activeJob: session.activeJob };
  const count = (sql: string) => project.db.prepare(sql).pluck().get() as number;
  const images = count('SELECT COUNT(*) FROM images');
  const labelled = count('SELECT COUNT(*) FROM labels');
  return {
    project: {
      dir: project.dir,
      name: path.basename(project.dir),
      images,
      labelled,
      unlabelled: images - labelled,
      testImages: count('SELECT COUNT(*) FROM images WHERE test_set = 1'),
      duplicates: count("SELECT COUNT(*) FROM files WHERE status = 'duplicate'"),
      importErrors: count("SELECT COUNT(*) FROM files WHERE status = 'error'"),
      classes: listClasses(project.db),
      runs: count('SELECT COUNT(*) FROM runs'),
      predictionRunId: latestPredictionRunId(project.db),
      embeddingRunId: latestEmbeddingRunId(project.db),
    },
    activeJob: session.activeJob,
  };
}

function runInfo(run: Run): RunInfo {
  const { pid: _pid, ...rest } = run;
  return { ...rest, resumable: isResumable(run.status) };
}

function requireClassId(db: Project['db'], classId: number): ClassInfo {
  const found = listClasses(db).find((c) => c.id === classId);
  if (!found) throw new UserError(`no class with id ${classId} (it may have been deleted)`, 'not_found');
  return found;
}

function requireImages(project: Project, imageIds: number[]): void {
  const known = project.db.prepare('SELECT 1 FROM images WHERE id = ?').pluck();
  const missing = imageIds.filter((id) => !known.get(id));
  if (missing.length > 0) {
    throw new UserError(`no image ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''} in this project`, 'not_found');
  }
}

/** The class ids of a run's probability vectors, from the summary it wrote. */
function runClassIds(db: Project['db'], runId: number): number[] {
  const summary = getRun(db, runId)?.summary as { classes?: unknown } | null | undefined;
  const list = summary?.classes;
  if (!Array.isArray(list)) return [];
  return list.map((entry) => (typeof entry === 'number' ? entry : Number((entry as { id?: unknown })?.id)));
}

function runWithPredictions(db: Project['db'], runId: number | undefined): Run {
  const id = runId ?? latestPredictionRunId(db);
  if (!id) throw new UserError('there are no predictions yet: fine-tune a model first', 'no_predictions');
  return requireRun(db, id);
}
