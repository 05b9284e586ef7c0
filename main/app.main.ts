/**
 * Electron main process entry (bundled to dist/main/app.main.mjs). Owns only windows, menus,
 * dialogs and the app:// protocol; the project and its jobs live in each window's core process.
 */
import { BrowserWindow, Menu, app, dialog, ipcMain, protocol, shell, type IpcMainInvokeEvent } from 'electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import { operationNames, type OperationName } from '../app/contract/operations.ts';
import { buildMenuTemplate } from './menu_template.ts';
import { electronSqliteBinding } from './native_binding.ts';
import { checkedCall } from './picked_folders.ts';
import { IMAGE_DIALOG_FILTERS, readPickedImages } from './picked_images.ts';
import { CHOOSE_FOLDER_CHANNEL, CHOOSE_IMAGES_CHANNEL, chooseFolderSchema, operationChannel, type IpcResult } from './preload_api.ts';
import { APP_SCHEME, isTrustedSender, navigationAction } from './security.ts';
import { projectArgument } from './startup_project.ts';
import { StudioWindow, type ShellPaths } from './studio_window.main.ts';

app.setName('Contrast Studio');
protocol.registerSchemesAsPrivileged([
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true } },
]);

const entryFile = fileURLToPath(import.meta.url);
const bundleDir = path.dirname(entryFile);
const appRoot = path.resolve(bundleDir, '..', '..');
// An installed app runs `Contrast Studio [project]`; a checkout runs `electron dist/main/app.main.mjs [project]`.
const requestedIn = (argv: string[], cwd: string) => projectArgument(argv.slice(1), cwd, [entryFile]);

// Test drivers give each launch its own profile, which must also hold the single-instance lock.
if (app.commandLine.hasSwitch('user-data-dir')) app.setPath('userData', app.commandLine.getSwitchValue('user-data-dir'));

let quitting = false;
const pendingOpens: string[] = [];

if (!app.requestSingleInstanceLock({ project: requestedIn(process.argv, process.cwd()) })) {
  // The running instance receives our project through 'second-instance' and opens it.
  app.quit();
} else {
  app.on('second-instance', (_event, argv, workingDirectory, additionalData) => {
    const fromData = (additionalData as { project?: unknown } | null)?.project;
    const requested = typeof fromData === 'string' ? fromData : requestedIn(argv, workingDirectory);
    if (requested) void openProject(requested);
    else StudioWindow.focused()?.focus();
  });
  // macOS: a folder dropped on the Dock icon or chosen in the Finder's "Open With".
  app.on('open-file', (event, file) => {
    event.preventDefault();
    if (app.isReady()) void openProject(file);
    else pendingOpens.push(file);
  });
  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-navigate', (event, url) => guardNavigation(event, url));
    contents.on('will-redirect', (event, url) => guardNavigation(event, url));
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      if (navigationAction(url, 'new-window') === 'open-external') void shell.openExternal(url);
      return { action: 'deny' };
    });
  });
  app.on('before-quit', () => (quitting = true));
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin' || quitting) app.quit();
  });
  app.on('activate', () => {
    if (StudioWindow.open.size === 0) void openStartupWindow();
  });
  void app.whenReady().then(async () => {
    registerIpc();
    Menu.setApplicationMenu(Menu.buildFromTemplate(buildMenuTemplate(process.platform, menuActions) as Electron.MenuItemConstructorOptions[]));
    const requested = pendingOpens.shift() ?? requestedIn(process.argv, process.cwd());
    await openStartupWindow(requested);
  });
}

function shellPaths(): ShellPaths {
  return {
    bundleDir,
    rendererDir: path.join(appRoot, 'dist', 'renderer'),
    userDataDir: app.getPath('userData'),
    sqliteBinding: electronSqliteBinding({
      packaged: app.isPackaged,
      resourcesPath: process.resourcesPath,
      repoRoot: appRoot,
      platform: process.platform,
      arch: process.arch,
    }),
  };
}

function newWindow(): StudioWindow {
  return new StudioWindow(shellPaths(), (studio) => {
    // The OS recent list (Dock/taskbar jump list, File > Open Recent on macOS).
    if (studio.projectDir) app.addRecentDocument(studio.projectDir);
  });
}

/** A new window on the requested project, else the last one, else the default project. */
async function openStartupWindow(requested?: string): Promise<void> {
  const studio = newWindow();
  let opened = await studio.startup(requested);
  let problem: [string, string] | null = null;
  if (!opened.ok && requested) {
    problem = [`Could not open ${requested}`, opened.error.message];
    opened = await studio.startup();
  }
  if (!opened.ok) problem ??= ['Could not open a project', opened.error.message];
  else if (opened.value.skipped.length > 0) console.warn(`skipped recent projects:\n  ${opened.value.skipped.join('\n  ')}`);
  await studio.load();
  // After loading: a dialog on a window that is not shown yet would be invisible.
  if (problem) await showProblem(studio.window, ...problem);
}

/**
 * A project asked for by the OS or a second launch: its window comes to the front if it is
 * open already; otherwise it opens in a new window.
 */
async function openProject(dir: string): Promise<void> {
  const showing = StudioWindow.showingProject(path.resolve(dir));
  if (showing) return showing.focus();
  await openStartupWindow(dir);
}

/** File menu: switch the focused window to another project (the core refuses while a job runs). */
async function switchProject(operation: 'projects.open' | 'projects.create', title: string): Promise<void> {
  const studio = StudioWindow.focused();
  if (!studio) return openStartupWindow();
  const picked = await dialog.showOpenDialog(studio.window, {
    title,
    properties: ['openDirectory', 'createDirectory', 'promptToCreate'],
  });
  const dir = picked.filePaths[0];
  if (picked.canceled || !dir) return;
  const elsewhere = StudioWindow.showingProject(path.resolve(dir));
  if (elsewhere) return elsewhere.focus();
  const result = await studio.call(operation, { dir });
  if (!result.ok) await showProblem(studio.window, `Could not open ${dir}`, result.error.message);
}

const menuActions = {
  newProject: () => void switchProject('projects.create', 'New Project: choose an empty folder'),
  openProject: () => void switchProject('projects.open', 'Open Project'),
  openSample: async () => {
    const studio = StudioWindow.focused();
    const result = await studio?.call('projects.openSample', {});
    if (studio && result && !result.ok) await showProblem(studio.window, 'Could not open the sample project', result.error.message);
  },
};

function registerIpc(): void {
  for (const name of operationNames) {
    ipcMain.handle(operationChannel(name), (event, input) => answer(event, name, input));
  }
  handleNativeDialog(CHOOSE_FOLDER_CHANNEL, { properties: ['openDirectory', 'createDirectory'] }, (studio, paths) => {
    const folder = paths[0] ?? null;
    if (folder) studio.pickedFolders.remember(folder);
    return folder;
  });
  handleNativeDialog(CHOOSE_IMAGES_CHANNEL, { properties: ['openFile', 'multiSelections'], filters: IMAGE_DIALOG_FILTERS }, (_studio, paths) => readPickedImages(paths));
}

/** A native open dialog the studio page may ask for; null when cancelled, or asked by anything else or with bad options. */
function handleNativeDialog<T>(
  channel: string,
  kind: Pick<Electron.OpenDialogOptions, 'properties' | 'filters'>,
  picked: (studio: StudioWindow, paths: string[]) => T | Promise<T>,
): void {
  ipcMain.handle(channel, async (event, options) => {
    const studio = trustedWindow(event);
    const parsed = v.safeParse(chooseFolderSchema, options);
    if (!studio || !parsed.success) return null;
    const result = await dialog.showOpenDialog(studio.window, { title: parsed.output.title, buttonLabel: parsed.output.buttonLabel, ...kind });
    return result.canceled ? null : picked(studio, result.filePaths);
  });
}

async function answer(event: IpcMainInvokeEvent, name: OperationName, input: unknown): Promise<IpcResult<unknown>> {
  const studio = trustedWindow(event);
  if (!studio) return { ok: false, status: 403, error: { code: 'forbidden', message: 'only the studio page may call the core' } };
  return checkedCall(name, input, studio.pickedFolders, (checkedName, checkedInput) => studio.call(checkedName, checkedInput));
}

/** The studio window behind an IPC message, if it comes from the app's own top-level page. */
function trustedWindow(event: IpcMainInvokeEvent): StudioWindow | undefined {
  const frame = event.senderFrame;
  if (!frame || !isTrustedSender(frame.url, frame.parent === null)) return undefined;
  return StudioWindow.forWebContents(event.sender);
}

function guardNavigation(event: Electron.Event, url: string): void {
  const action = navigationAction(url, 'navigate');
  if (action === 'allow') return;
  event.preventDefault();
  if (action === 'open-external') void shell.openExternal(url);
}

async function showProblem(window: BrowserWindow, message: string, detail: string): Promise<void> {
  await dialog.showMessageBox(window, { type: 'warning', message, detail });
}
