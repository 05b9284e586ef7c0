/**
 * Which paths the page of a desktop window may hand the core. The page names folders for
 * import.start and projects.create, and a page that went wrong (a bug, injected script) could
 * otherwise import ~/.ssh or create a project anywhere. The main process remembers what its
 * native folder picker returned in each window, and such calls are answered only for those
 * folders and what lies inside them. No electron import, so it is unit-tested.
 */
import path from 'node:path';
import type { OperationName } from '../app/contract/operations.ts';
import { validateCall, type IpcFailure, type IpcResult } from './preload_api.ts';

/** The operations that take paths from the page, and where in their input the paths are. */
const PATHS_IN: Partial<Record<OperationName, (input: never) => string[]>> = {
  'import.start': (input: { paths: string[] }) => input.paths,
  'projects.create': (input: { dir: string }) => [input.dir],
};

/** The folders the user picked in one window's native dialog. */
export class PickedFolders {
  private readonly folders = new Set<string>();

  remember(folder: string): void {
    this.folders.add(path.resolve(folder));
  }

  /** A picked folder or a path inside one; `..` is resolved first, so it cannot climb out. */
  allows(given: string): boolean {
    if (!path.isAbsolute(given)) return false;
    const resolved = path.resolve(given);
    return [...this.folders].some((folder) => resolved === folder || resolved.startsWith(folder.endsWith(path.sep) ? folder : folder + path.sep));
  }
}

/**
 * Checks a call from a window's page (its input, then its paths) before `send` hands it to the
 * window's core, so a refused call never reaches the core.
 */
export async function checkedCall(
  name: string,
  input: unknown,
  picked: PickedFolders,
  send: (name: OperationName, input: unknown) => Promise<IpcResult<unknown>>,
): Promise<IpcResult<unknown>> {
  const checked = await validateCall(name, input);
  if (!checked.ok) return checked;
  const paths = PATHS_IN[name as OperationName]?.(checked.input as never) ?? [];
  const unpicked = paths.find((given) => !picked.allows(given));
  if (unpicked !== undefined) return notPicked(unpicked);
  return send(name as OperationName, checked.input);
}

function notPicked(given: string): IpcFailure {
  return {
    ok: false,
    status: 403,
    error: { code: 'not_picked', message: `choose ${given.slice(0, 200)} with the Choose… button first: the desktop app only uses folders picked in its folder dialog` },
  };
}
