/** Importing images into a project, and the files an import skipped. */
import fs from 'node:fs';
import { UserError } from '../contract/errors.ts';
import { importPaths, type ImportOptions, type ImportSummary } from '../media/import.ts';
import { fileProblems } from '../store/gallery.ts';
import type { Project } from '../store/project.ts';
import type { Handlers } from './handlers.ts';
import { requireAbsolute } from './projects.ts';
import type { Session } from './session.ts';

/** Long paths in messages keep their start and end. */
export { shortenPath } from '../store/file_paths.ts';

export function importFiles(project: Project, paths: string[], options: ImportOptions = {}): Promise<ImportSummary> {
  return importPaths(project, paths, options);
}

export function importErrors(project: Project) {
  return fileProblems(project.db, 'error', undefined, -1);
}

function requireExistingPath(given: string): string {
  if (!fs.existsSync(requireAbsolute(given))) throw new UserError(`no such file or folder: ${given}`, 'not_found', { path: given });
  return given;
}

export function importHandlers(session: Session): Pick<Handlers, 'import.start' | 'import.cancel' | 'import.problems'> {
  return {
    async 'import.start'({ paths, labelsFromFolders, testSet }) {
      const project = session.requireProject();
      const roots = paths.map(requireExistingPath);
      const controller = new AbortController();
      const release = session.beginJob({ kind: 'import', id: 0, startedAt: new Date().toISOString() }, () => controller.abort());
      const importing = importFiles(project, roots, {
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
      session.setJobCancel(() => controller.abort(), importing);
      return { started: true as const };
    },
    async 'import.cancel'() {
      return { cancelled: session.cancelJob('import') };
    },
    async 'import.problems'({ status, batchId }) {
      return { problems: fileProblems(session.requireProject().db, status, batchId) };
    },
  };
}
