/** Labels and classes: set and undo labels, accept suggestions, manage classes, the label queue, CSV in and out. */
import type { ClassInfo } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import { imagesByIds } from '../store/gallery.ts';
import { authorOf, HOST_NAME, type Caller } from '../contract/team.ts';
import { addClass, deleteClass, listClasses, mergeClasses, renameClass } from '../store/labels.ts';
import { applyLabelCsv, exportLabelFolders, exportLabelsCsv, type CsvLabelResult } from '../store/labels_csv.ts';
import type { Project } from '../store/project.ts';
import { castVotes, votedBy, type VoteEntry, type VoteSource } from '../store/votes.ts';
import { latestEmbeddingRunId } from '../store/gallery.ts';
import { currentModelRunId } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import { requireImages } from './images.ts';
import type { Session } from './session.ts';
import { secondOpinionImages } from './team.ts';

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

/** Applies path,class rows from a CSV file: the command line runs at the host's machine, so they are the host's. */
export function labelFromCsv(project: Project, csvFile: string): CsvLabelResult {
  return applyLabelCsv(project.db, csvFile, HOST_NAME);
}

export function exportLabels(project: Project, format: 'csv' | 'folders', outDir: string, withAuthor = false): { path: string; written: number; missing: string[] } {
  if (format === 'csv') {
    const file = exportLabelsCsv(project.db, outDir, withAuthor);
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
  /** Every label set by a person is their vote; whose vote becomes the final label is the store's rule (store/votes.ts). */
  const vote = (caller: Caller, entries: VoteEntry[], source: VoteSource) => {
    const author = authorOf(caller);
    const changes = castVotes(project().db, entries, author, source);
    session.team.release(entries.map((entry) => entry.imageId), author);
    if (entries.some((entry) => entry.classId === null)) session.queue.invalidate();
    changed();
    return changes;
  };
  return {
    async 'labels.set'({ imageIds, classId }, caller) {
      if (classId !== null) requireClassId(project(), classId);
      requireImages(project(), imageIds);
      const changes = vote(caller, imageIds.map((imageId) => ({ imageId, classId })), 'human');
      return { changes, ...classes() };
    },
    async 'labels.restore'({ changes }, caller) {
      const imageIds = changes.map((c) => c.imageId);
      requireImages(project(), imageIds);
      if (caller.role === 'guest') requireOwnVotes(project(), imageIds, caller.name);
      vote(caller, changes, 'human');
      return classes();
    },
    async 'predictions.accept'({ imageIds }, caller) {
      const { db } = project();
      const runId = currentModelRunId(db);
      if (!runId) throw new UserError('there are no predictions yet', 'no_model');
      const items = imagesByIds(db, imageIds, runId).filter((item) => item.predictedClassId !== null);
      if (items.length === 0) throw new UserError('none of these images has a prediction', 'no_predictions');
      const changes = vote(caller, items.map((item) => ({ imageId: item.id, classId: item.predictedClassId })), 'suggestion');
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
      session.queue.invalidate();
      changed();
      return { removed: removed!, ...classes() };
    },
    async 'queue.next'({ limit }, caller) {
      const { db } = project();
      const holder = authorOf(caller);
      // Images reserved for teammates are left out, so two people labelling at once never get the same one.
      const taken = session.team.leasedToOthers(holder);
      const predictionRunId = currentModelRunId(db);
      const secondOpinions = secondOpinionImages(project(), holder).filter((imageId) => !taken.has(imageId));
      const choice = session.queue.next(db, limit, predictionRunId, latestEmbeddingRunId(db), taken);
      const imageIds = [...new Set([...secondOpinions, ...choice.imageIds])].slice(0, limit);
      session.team.lease(imageIds, holder);
      return { strategy: choice.strategy, runId: predictionRunId, items: imagesByIds(db, imageIds, predictionRunId) };
    },
  };
}

/** A teammate may undo their own labels only, not put back someone else's. */
function requireOwnVotes(project: Project, imageIds: number[], name: string): void {
  const own = votedBy(project.db, imageIds, name);
  const others = imageIds.filter((imageId) => !own.has(imageId));
  if (others.length > 0) throw new UserError(`you can only undo your own labels (image ${others.slice(0, 5).join(', ')} is not yours)`, 'forbidden', { imageIds: others });
}
