/** Labels and classes: set and undo labels, accept suggestions, manage classes, the label queue, CSV in and out. */
import os from 'node:os';
import type { ClassInfo } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import { imagesByIds } from '../store/gallery.ts';
import { addClass, deleteClass, listClasses, mergeClasses, renameClass, setEachLabel, setLabels } from '../store/labels.ts';
import { applyLabelCsv, exportLabelFolders, exportLabelsCsv, type CsvLabelResult } from '../store/labels_csv.ts';
import type { Project } from '../store/project.ts';
import { latestEmbeddingRunId } from '../store/gallery.ts';
import { currentModelRunId } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import { requireImages } from './images.ts';
import { chooseNext } from './label_queue.ts';
import type { Session } from './session.ts';

/** The author recorded on labels set through the studio. */
export const STUDIO_AUTHOR = 'studio';

export type ClassAction = { kind: 'add'; name: string } | { kind: 'rename'; from: string; to: string } | { kind: 'merge'; from: string; into: string } | { kind: 'delete'; name: string };

/** Changes classes by name (the CLI's way); returns what happened, in numbers. */
export function changeClasses(project: Project, action: ClassAction): { moved?: number; removed?: number } {
  switch (action.kind) {
    case 'add':
      addClass(project.db, action.name);
      return {};
    case 'rename':
      renameClass(project.db, action.from, action.to);
      return {};
    case 'merge':
      return { moved: mergeClasses(project.db, action.from, action.into) };
    case 'delete':
      return { removed: deleteClass(project.db, action.name) };
  }
}

export function classesOf(project: Project): ClassInfo[] {
  return listClasses(project.db);
}

/** Applies path,class rows from a CSV file, recorded under the user's login name. */
export function labelFromCsv(project: Project, csvFile: string): CsvLabelResult {
  return applyLabelCsv(project.db, csvFile, os.userInfo().username);
}

export function exportLabels(project: Project, format: 'csv' | 'folders', outDir: string): { path: string; written: number; missing: string[] } {
  if (format === 'csv') {
    const file = exportLabelsCsv(project.db, outDir);
    return { path: file, written: countLabels(project), missing: [] };
  }
  return { path: outDir, ...exportLabelFolders(project.db, outDir) };
}

export function countLabels(project: Project): number {
  return listClasses(project.db).reduce((sum, c) => sum + c.labels, 0);
}

export function requireClassId(project: Project, classId: number): ClassInfo {
  const found = listClasses(project.db).find((c) => c.id === classId);
  if (!found) throw new UserError(`no class with id ${classId} (it may have been deleted)`, 'not_found', { classId });
  return found;
}

type LabelOperations = 'labels.set' | 'labels.restore' | 'predictions.accept' | 'classes.list' | 'classes.add' | 'classes.rename' | 'classes.merge' | 'classes.delete' | 'queue.next';

export function labelHandlers(session: Session): Pick<Handlers, LabelOperations> {
  const project = () => session.requireProject();
  const classes = () => ({ classes: listClasses(project().db) });
  const changed = () => session.emit({ type: 'labels.changed' });
  return {
    async 'labels.set'({ imageIds, classId }) {
      if (classId !== null) requireClassId(project(), classId);
      requireImages(project(), imageIds);
      const changes = setLabels(project().db, imageIds, classId, 'human', STUDIO_AUTHOR);
      changed();
      return { changes, ...classes() };
    },
    async 'labels.restore'({ changes }) {
      const { db } = project();
      requireImages(project(), changes.map((c) => c.imageId));
      setEachLabel(db, changes, 'human', STUDIO_AUTHOR);
      changed();
      return classes();
    },
    async 'predictions.accept'({ imageIds }) {
      const { db } = project();
      const runId = currentModelRunId(db);
      if (!runId) throw new UserError('there are no predictions yet', 'no_model');
      const items = imagesByIds(db, imageIds, runId).filter((item) => item.predictedClassId !== null);
      if (items.length === 0) throw new UserError('none of these images has a prediction', 'no_predictions');
      const changes = setEachLabel(db, items.map((item) => ({ imageId: item.id, classId: item.predictedClassId })), 'suggestion', STUDIO_AUTHOR);
      changed();
      return { changes, ...classes() };
    },
    async 'classes.list'() {
      return classes();
    },
    async 'classes.add'({ name }) {
      const classId = addClass(project().db, name);
      changed();
      return { classId, ...classes() };
    },
    async 'classes.rename'({ classId, name }) {
      changeClasses(project(), { kind: 'rename', from: requireClassId(project(), classId).name, to: name });
      changed();
      return classes();
    },
    async 'classes.merge'({ classId, intoClassId }) {
      const { moved } = changeClasses(project(), { kind: 'merge', from: requireClassId(project(), classId).name, into: requireClassId(project(), intoClassId).name });
      changed();
      return { moved: moved!, ...classes() };
    },
    async 'classes.delete'({ classId }) {
      const { removed } = changeClasses(project(), { kind: 'delete', name: requireClassId(project(), classId).name });
      changed();
      return { removed: removed!, ...classes() };
    },
    async 'queue.next'({ limit }) {
      const { db } = project();
      const predictionRunId = currentModelRunId(db);
      const choice = chooseNext(db, limit, predictionRunId, latestEmbeddingRunId(db));
      return { strategy: choice.strategy, runId: predictionRunId, items: imagesByIds(db, choice.imageIds, predictionRunId) };
    },
  };
}
