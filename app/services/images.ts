/** Browsing images: pages and ids for the gallery, one image's detail, and its files by id. */
import { UserError } from '../contract/errors.ts';
import { imageDetail, listImageIds, listImages } from '../store/gallery.ts';
import { uiFileType } from '../media/mime.ts';
import { readMedia, type MediaKind, type MediaResult } from '../media/serve_original.ts';
import { getOriginal } from '../store/images.ts';
import type { Project } from '../store/project.ts';
import { runClassIds } from '../store/runs.ts';
import { currentModelRunId } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';

/**
 * An image's thumbnail or original by id, for the image servers of both front ends; an original
 * only while it is still the file that was imported (media/serve_original.ts).
 */
export function mediaOf(project: Project, kind: MediaKind, imageId: number): Promise<MediaResult> {
  return readMedia(project.db, kind, imageId);
}

/** The Content-Type of the studio's own files, by extension. */
export { uiFileType };
export type { MediaKind, MediaResult };

export function requireImages(project: Project, imageIds: number[]): void {
  const missing = imageIds.filter((id) => getOriginal(project.db, id) === undefined);
  if (missing.length > 0) {
    throw new UserError(`no image ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''} in this project`, 'not_found', { imageIds: missing });
  }
}

export function imageHandlers(session: Session): Pick<Handlers, 'images.list' | 'images.ids' | 'images.get'> {
  const db = () => session.requireProject().db;
  return {
    async 'images.list'({ filter, sort, offset, limit }) {
      const runId = currentModelRunId(db());
      return { ...listImages(db(), filter, sort, runId, offset, limit), offset, predictionRunId: runId };
    },
    async 'images.ids'({ filter, sort }) {
      return { ids: listImageIds(db(), filter, sort, currentModelRunId(db())) };
    },
    async 'images.get'({ imageId }, caller) {
      const runId = currentModelRunId(db());
      const detail = imageDetail(db(), imageId, runId, runId ? runClassIds(db(), runId) : []);
      if (!detail) throw new UserError(`no image ${imageId} in this project`, 'not_found', { imageId });
      // Where the host keeps the file is not a teammate's business: the name is enough to talk about it.
      return caller.role === 'guest' ? { ...detail, path: null } : detail;
    },
  };
}
