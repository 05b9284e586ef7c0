import fs from 'node:fs/promises';
import path from 'node:path';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif']);

export interface FoundFile {
  path: string;
  size: number;
  mtimeMs: number;
  /** The folder name between the import root and the file, used as a class with --labels-from-folders. */
  folderLabel: string | null;
}

export interface ScanProblem {
  path: string;
  reason: string;
}

export function isImagePath(file: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(file).toLowerCase());
}

/**
 * Lists the image files below the given paths, following symlinks but entering each real folder
 * once, so a link back up the tree cannot loop.
 */
export async function scanImages(roots: string[]): Promise<{ files: FoundFile[]; problems: ScanProblem[] }> {
  const files: FoundFile[] = [];
  const problems: ScanProblem[] = [];
  const visitedDirs = new Set<string>();
  const seenFiles = new Set<string>();

  async function addFile(file: string, root: string): Promise<void> {
    if (seenFiles.has(file)) return;
    seenFiles.add(file);
    try {
      const stat = await fs.stat(file);
      files.push({ path: file, size: stat.size, mtimeMs: stat.mtimeMs, folderLabel: folderLabelOf(root, file) });
    } catch (error) {
      problems.push({ path: file, reason: describeFsError(error) });
    }
  }

  async function walk(dir: string, root: string): Promise<void> {
    let real: string;
    let entries;
    try {
      real = await fs.realpath(dir);
      if (visitedDirs.has(real)) return;
      visitedDirs.add(real);
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      problems.push({ path: dir, reason: describeFsError(error) });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full, root);
      else if (entry.isSymbolicLink()) await followLink(full, root);
      else if (entry.isFile() && isImagePath(entry.name)) await addFile(full, root);
    }
  }

  async function followLink(link: string, root: string): Promise<void> {
    try {
      const stat = await fs.stat(link);
      if (stat.isDirectory()) await walk(link, root);
      else if (stat.isFile() && isImagePath(link)) await addFile(link, root);
    } catch (error) {
      problems.push({ path: link, reason: `broken link: ${describeFsError(error)}` });
    }
  }

  for (const given of roots) {
    const root = path.resolve(given);
    let stat;
    try {
      stat = await fs.stat(root);
    } catch (error) {
      problems.push({ path: root, reason: describeFsError(error) });
      continue;
    }
    if (stat.isDirectory()) await walk(root, root);
    else if (isImagePath(root)) await addFile(root, path.dirname(root));
    else problems.push({ path: root, reason: 'not an image file (unknown extension)' });
  }
  return { files, problems };
}

function folderLabelOf(root: string, file: string): string | null {
  const relative = path.relative(root, path.dirname(file));
  if (!relative) return null;
  return path.basename(relative);
}

export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'file not found';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'ELOOP': return 'symbolic link loop';
    default: return (error as Error).message;
  }
}
