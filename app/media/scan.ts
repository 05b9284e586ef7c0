import fs from 'node:fs/promises';
import path from 'node:path';
import { IMAGE_FILE_EXTENSIONS } from '../contract/operations.ts';
import { pathKey } from '../store/file_paths.ts';

export const IMAGE_EXTENSIONS = new Set(IMAGE_FILE_EXTENSIONS.map((extension) => `.${extension}`));

export interface FoundFile {
  /** The path as the store keeps it (file_paths.ts): lossless, also for names that are not UTF-8. */
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

/** Why a FIFO, socket or device (or a link to one) is not imported: reading one can block forever or never end. */
export const NOT_A_REGULAR_FILE = 'not a regular file';

export function isImagePath(file: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(file).toLowerCase());
}

/**
 * Paths are handled as "byte strings" while scanning: each character one byte of the name (latin1),
 * since a name that is not UTF-8 would be mangled as text and then not found.
 */
const bytesOf = (byteString: string) => Buffer.from(byteString, 'latin1');
const keyOf = (byteString: string) => pathKey(bytesOf(byteString));

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
      const stat = await fs.stat(bytesOf(file));
      if (!stat.isFile()) return void problems.push({ path: keyOf(file), reason: NOT_A_REGULAR_FILE });
      files.push({ path: keyOf(file), size: stat.size, mtimeMs: stat.mtimeMs, folderLabel: folderLabelOf(root, file) });
    } catch (error) {
      problems.push({ path: keyOf(file), reason: describeFsError(error) });
    }
  }

  async function walk(dir: string, root: string): Promise<void> {
    let real: string;
    let entries;
    try {
      real = await fs.realpath(bytesOf(dir), { encoding: 'latin1' });
      if (visitedDirs.has(real)) return;
      visitedDirs.add(real);
      entries = await fs.readdir(bytesOf(dir), { withFileTypes: true, encoding: 'latin1' });
    } catch (error) {
      problems.push({ path: keyOf(dir), reason: describeFsError(error) });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full, root);
      else if (entry.isSymbolicLink()) await followLink(full, root);
      else if (isImagePath(entry.name)) await addFile(full, root);
    }
  }

  async function followLink(link: string, root: string): Promise<void> {
    try {
      const stat = await fs.stat(bytesOf(link));
      if (stat.isDirectory()) await walk(link, root);
      else if (isImagePath(link)) await addFile(link, root);
    } catch (error) {
      problems.push({ path: keyOf(link), reason: `broken link: ${describeFsError(error)}` });
    }
  }

  for (const given of roots) {
    const root = Buffer.from(path.resolve(given), 'utf8').toString('latin1');
    let stat;
    try {
      stat = await fs.stat(bytesOf(root));
    } catch (error) {
      problems.push({ path: keyOf(root), reason: describeFsError(error) });
      continue;
    }
    if (stat.isDirectory()) await walk(root, root);
    else if (isImagePath(root)) await addFile(root, path.dirname(root));
    else problems.push({ path: keyOf(root), reason: 'not an image file (unknown extension)' });
  }
  return { files, problems };
}

function folderLabelOf(root: string, file: string): string | null {
  const relative = path.relative(root, path.dirname(file));
  if (!relative) return null;
  return bytesOf(path.basename(relative)).toString('utf8');
}

export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'file not found';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'ELOOP': return 'symbolic link loop';
    case 'ENAMETOOLONG': return 'path too long for the file system';
    default: return (error as Error).message.replace(/, \w+ '.*$/s, ''); // without the path, which can be 4 KB
  }
}
