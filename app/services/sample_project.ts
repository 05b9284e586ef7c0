/**
 * The bundled sample: about 200 CIFAR-10 photos in class folders. Opening it builds a project
 * once (in the studio's data folder) with a few labels per class and the rest unlabelled, so
 * every step of the workflow can be tried in minutes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../contract/errors.ts';
import { importPaths } from '../media/import.ts';
import { imagePaths } from '../store/images.ts';
import { HOST_NAME } from '../contract/team.ts';
import { classIdFor, setLabels } from '../store/labels.ts';
import { isProjectDir, openProject, type Project } from '../store/project.ts';
import type { Session } from './session.ts';

export const SAMPLE_IMAGES = sampleImagesDir();
/** Labels given per class; the rest stay unlabelled for "label next" and distillation to work on. */
export const SAMPLE_LABELS_PER_CLASS = 5;

export async function openSampleProject(session: Session, imagesDir = SAMPLE_IMAGES): Promise<void> {
  const dir = path.join(session.dataDir, 'sample-project');
  if (!isProjectDir(dir)) await buildSample(dir, imagesDir);
  session.open(dir);
}

/** Builds next to the final folder and renames at the end, so a crash never leaves a half-built sample. */
/**
 * The installed desktop app carries the images beside app.asar (electron-builder's extraResources)
 * as real files, since training decodes them by path; a checkout reads them from resources/.
 */
function sampleImagesDir(): string {
  const packaged = (process as { resourcesPath?: string }).resourcesPath;
  if (packaged && fs.existsSync(path.join(packaged, 'sample'))) return path.join(packaged, 'sample');
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../resources/sample');
}

async function buildSample(dir: string, imagesDir: string): Promise<void> {
  if (!fs.existsSync(imagesDir)) throw new UserError(`the sample images are missing from this installation (${imagesDir})`, 'not_found');
  const building = `${dir}.building`;
  fs.rmSync(building, { recursive: true, force: true });
  const project = openProject(building, { create: true });
  try {
    await importPaths(project, [imagesDir]);
    labelFirstOfEachFolder(project);
  } finally {
    project.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(building, dir);
}

function labelFirstOfEachFolder(project: Project): void {
  const byClass = new Map<string, number[]>();
  for (const row of imagePaths(project.db)) {
    const folder = path.basename(path.dirname(row.path));
    byClass.set(folder, [...(byClass.get(folder) ?? []), row.id]);
  }
  project.db.transaction(() => {
    for (const [name, ids] of byClass) {
      setLabels(project.db, ids.slice(0, SAMPLE_LABELS_PER_CLASS), classIdFor(project.db, name), 'folder', HOST_NAME);
    }
  })();
}
