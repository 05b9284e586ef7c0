/**
 * What Electron's preload exposes to the UI, shared by the preload (which builds it), the main
 * process (which answers it) and the renderer (which wraps it into the same Api as the HTTP
 * client). No electron or Node import: the renderer bundles this file.
 */
import * as v from 'valibot';
import {
  ApiError,
  type Api,
  type ApiErrorBody,
  type Input,
  type OperationName,
  type Output,
  type ServerEvent,
  type TryImage,
} from './operations.ts';

/** The window global the preload defines. */
export const BRIDGE_KEY = 'contrastApi';
/** Desktop-only helpers that have no HTTP counterpart (native dialogs). */
export const DESKTOP_KEY = 'contrastDesktop';

/** One IPC channel per operation, so the main process answers only names it knows. */
export function operationChannel(name: OperationName): string {
  return `contrast:op:${name}`;
}
/** Main → preload: the port that carries core events straight from the core process. */
export const EVENTS_PORT_CHANNEL = 'contrast:events-port';
export const CHOOSE_FOLDER_CHANNEL = 'contrast:choose-folder';
export const CHOOSE_IMAGES_CHANNEL = 'contrast:choose-images';

/**
 * Errors cross Electron's contextBridge as a bare message, so results travel as this envelope
 * and the renderer turns failures back into ApiError with their code.
 */
export type IpcResult<T> = { ok: true; value: T } | IpcFailure;
/** `status` is what the HTTP server would have answered, so both clients raise the same ApiError. */
export type IpcFailure = { ok: false; status: number; error: ApiErrorBody };

export type ContrastBridge = {
  [N in OperationName]: (input: Input<N>) => Promise<IpcResult<Output<N>>>;
} & {
  onEvent(listener: (event: ServerEvent) => void): () => void;
};

/** A file the native image picker chose, as the main process read it: its name and bytes, or why it was not read. */
export type PickedImage = TryImage | { name: string; error: string };

export interface ContrastDesktop {
  /** A native folder picker; null when the user cancels. */
  chooseFolder(options: { title: string; buttonLabel?: string }): Promise<string | null>;
  /** A native picker of image files for Try it; the main process reads them, so the page never learns their paths. Null when cancelled. */
  chooseImages(options: { title: string; buttonLabel?: string }): Promise<PickedImage[] | null>;
}

/** The options of either native picker. */
export const chooseFolderSchema = v.object({
  title: v.pipe(v.string(), v.maxLength(200)),
  buttonLabel: v.optional(v.pipe(v.string(), v.maxLength(50))),
});

/** The renderer's Api over the preload bridge, behaving like the HTTP client. */
export function createIpcApi(bridge: ContrastBridge): Api {
  return {
    async call(name, input) {
      const invoke = bridge[name] as (input: unknown) => Promise<IpcResult<unknown>>;
      const result = await invoke(input);
      if (!result.ok) throw new ApiError(result.error.code, result.error.message, result.status);
      return result.value as never;
    },
    onEvent: (listener) => bridge.onEvent(listener),
  };
}
