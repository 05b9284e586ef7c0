/**
 * Projects: opening and creating them, and their counts. Every front end opens a project
 * through here, so a run left 'running' by a process that died is marked interrupted (and
 * resumable) the moment its project is opened for writing, wherever that happens.
 */
import path from 'node:path';
import type { ProjectCounts } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import type { ProjectStatus } from '../contract/operations.ts';
import { latestEmbeddingRunId } from '../store/gallery.ts';
import { openProject, type OpenOptions, type Project } from '../store/project.ts';
import { markInterruptedRuns } from '../store/runs.ts';
import { countProject } from '../store/status.ts';
import { currentModelRunId } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import { openSampleProject } from './sample_project.ts';
import type { Session } from './session.ts';

export type { Project };

export function openProjectFor(dir: string, options: OpenOptions = {}): Project {
  const project = openProject(dir, options);
  if (!project.db.readonly) markInterruptedRuns(project.db);
  return project;
}

/** Opens a project for one piece of work and always closes it, even when the work fails. */
export async function withProject<T>(dir: string, work: (project: Project) => Promise<T> | T, readonly = false): Promise<T> {
  const project = openProjectFor(dir, { readonly });
  try {
    return await work(project);
  } finally {
    project.close();
  }
}

export function projectCounts(project: Project, options: { checkOriginals?: boolean } = {}): ProjectCounts {
  return countProject(project.db, options);
}

export function studioStatus(session: Session): ProjectStatus {
  const project = session.project;
  if (!project) return { project: null, activeJob: session.activeJob };
  return {
    project: {
      dir: project.dir,
      name: path.basename(project.dir),
      ...projectCounts(project),
      predictionRunId: currentModelRunId(project.db),
      embeddingRunId: latestEmbeddingRunId(project.db),
    },
    activeJob: session.activeJob,
  };
}

/** Paths from the UI must be full: a relative one would depend on where the server was started. */
export function requireAbsolute(given: string): string {
  if (!path.isAbsolute(given)) throw new UserError(`give the full path of the folder (got "${given}")`, 'bad_path', { path: given });
  return given;
}

type ProjectOperations = 'project.status' | 'projects.recent' | 'projects.create' | 'projects.open' | 'projects.openSample' | 'projects.close';

export function projectHandlers(session: Session): Pick<Handlers, ProjectOperations> {
  return {
    async 'project.status'(_input, caller) {
      const status = studioStatus(session);
      // A teammate's tab keys its image cache on the name: the folder's place is the host's to know.
      if (caller.role === 'guest' && status.project) return { ...status, project: { ...status.project, dir: status.project.name } };
      return status;
    },
    async 'projects.recent'() {
      return { projects: session.recentProjects() };
    },
    async 'projects.create'({ dir }) {
      session.open(requireAbsolute(dir), true);
      return studioStatus(session);
    },
    async 'projects.open'({ dir }) {
      session.open(requireAbsolute(dir));
      return studioStatus(session);
    },
    async 'projects.openSample'() {
      await openSampleProject(session);
      return studioStatus(session);
    },
    async 'projects.close'() {
      session.close();
      return studioStatus(session);
    },
  };
}
