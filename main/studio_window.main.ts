/**
 * One studio window and its core process (Electron main process). Each window has its own core
 * (session, project lock, jobs) and its own session partition, so app:// image requests are
 * answered from the project of the window that asked.
 */
import { BrowserWindow, MessageChannelMain, dialog, screen, session as electronSession, utilityProcess, type UtilityProcess } from 'electron';
import path from 'node:path';
import type { OperationName } from '../app/contract/operations.ts';
import type { CoreToMain, MainToCore, MediaReply } from './core_messages.ts';
import { EVENTS_PORT_CHANNEL, type IpcFailure, type IpcResult } from './preload_api.ts';
import { serveAppRequest } from './app_protocol.ts';
import { PickedFolders } from './picked_folders.ts';
import { APP_ENTRY_URL, secureWebPreferences } from './security.ts';
import type { StartupChoice } from './startup_project.ts';
import { MINIMUM_WINDOW_SIZE, WINDOW_STATE_FILE, placeWindow, readWindowState, writeWindowState } from './window_state.ts';

export interface ShellPaths {
  /** Bundled entries: dist/main/ in a checkout, app.asar/dist/main/ when installed. */
  bundleDir: string;
  rendererDir: string;
  userDataDir: string;
  /** Electron-ABI better-sqlite3 for the core and job processes. */
  sqliteBinding: string;
}

type Reply = Extract<CoreToMain, { id: number }>;
type Request = Extract<MainToCore, { id: number }> extends infer M ? (M extends unknown ? Omit<M, 'id'> : never) : never;
/** How long a closing window waits for its core to release the project before ending it. */
const SHUTDOWN_GRACE_MS = 5000;

export class StudioWindow {
  static readonly open = new Set<StudioWindow>();
  private static readonly byPartition = new Map<string, StudioWindow>();
  private static readonly partitionsWithProtocol = new Set<string>();

  readonly window: BrowserWindow;
  /** What the native folder picker returned in this window: the only folders its page may import or create a project in. */
  readonly pickedFolders = new PickedFolders();
  projectDir: string | null = null;
  private core!: UtilityProcess;
  private coreReady!: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Reply) => void>();
  private closing = false;
  private coreStarted = false;

  static focused(): StudioWindow | undefined {
    const window = BrowserWindow.getFocusedWindow();
    return [...StudioWindow.open].find((studio) => studio.window === window) ?? [...StudioWindow.open].at(-1);
  }

  static forWebContents(contents: Electron.WebContents): StudioWindow | undefined {
    return [...StudioWindow.open].find((studio) => studio.window.webContents === contents);
  }

  static showingProject(dir: string): StudioWindow | undefined {
    return [...StudioWindow.open].find((studio) => studio.projectDir === dir);
  }

  constructor(
    private readonly paths: ShellPaths,
    private readonly onProjectChanged: (studio: StudioWindow) => void,
  ) {
    // The first free slot: the first window keeps the same partition (and its UI settings) across launches.
    let slot = 1;
    while ([...StudioWindow.byPartition.keys()].includes(`persist:window-${slot}`)) slot++;
    const partition = `persist:window-${slot}`;
    StudioWindow.byPartition.set(partition, this);
    this.registerProtocol(partition);

    const placement = placeWindow(
      readWindowState(this.stateFile),
      screen.getAllDisplays().map((display) => display.workArea),
      StudioWindow.open.size,
    );
    this.window = new BrowserWindow({
      ...placement.bounds,
      minWidth: MINIMUM_WINDOW_SIZE.width,
      minHeight: MINIMUM_WINDOW_SIZE.height,
      title: 'Contrast Studio',
      show: false,
      backgroundColor: '#1e1f22',
      webPreferences: { ...secureWebPreferences(path.join(paths.bundleDir, 'api.preload.cjs')), partition },
    });
    if (placement.maximized) this.window.maximize();
    this.window.once('ready-to-show', () => this.window.show());
    // Every load (first one, reloads) gets a fresh events port from the core.
    this.window.webContents.on('did-finish-load', () => this.connectEvents());
    this.window.on('close', (event) => this.onClose(event));
    this.window.on('closed', () => {
      StudioWindow.open.delete(this);
      StudioWindow.byPartition.delete(partition);
    });
    StudioWindow.open.add(this);
    this.startCore();
  }

  async load(): Promise<void> {
    await this.window.loadURL(APP_ENTRY_URL);
  }

  async call(name: OperationName, input: unknown): Promise<IpcResult<unknown>> {
    const reply = await this.request({ type: 'call', name, input });
    return reply.type === 'reply' ? reply.result : coreGone();
  }

  async media(media: 'thumb' | 'image', imageId: number): Promise<MediaReply> {
    const reply = await this.request({ type: 'media', media, imageId });
    return reply.type === 'media-reply' ? reply.reply : { ok: false, status: 503, error: coreGone().error };
  }

  async startup(requested?: string): Promise<IpcResult<StartupChoice>> {
    const reply = await this.request({ type: 'startup', requested });
    return (reply.type === 'reply' ? reply.result : coreGone()) as IpcResult<StartupChoice>;
  }

  focus(): void {
    if (this.window.isMinimized()) this.window.restore();
    this.window.focus();
  }

  private get stateFile(): string {
    return path.join(this.paths.userDataDir, WINDOW_STATE_FILE);
  }

  private registerProtocol(partition: string): void {
    if (StudioWindow.partitionsWithProtocol.has(partition)) return;
    StudioWindow.partitionsWithProtocol.add(partition);
    const windowSession = electronSession.fromPartition(partition);
    windowSession.protocol.handle('app', (request) => {
      const owner = StudioWindow.byPartition.get(partition);
      return serveAppRequest(request.url, this.paths.rendererDir, (media, imageId) =>
        owner ? owner.media(media, imageId) : Promise.resolve({ ok: false, status: 410, error: { code: 'closed', message: 'window closed' } }),
      );
    });
    // The studio needs no camera, microphone, location or notifications; only copying to the clipboard.
    windowSession.setPermissionRequestHandler((_contents, permission, callback) => callback(permission === 'clipboard-sanitized-write'));
    windowSession.setPermissionCheckHandler((_contents, permission) => permission === 'clipboard-sanitized-write');
  }

  private startCore(): void {
    const jobEntry = path.join(this.paths.bundleDir, 'job_process.mjs');
    this.core = utilityProcess.fork(path.join(this.paths.bundleDir, 'core_host.utility.mjs'), [jobEntry, this.paths.rendererDir], {
      serviceName: 'Contrast Studio core',
      env: { ...process.env, CONTRAST_SQLITE_BINDING: this.paths.sqliteBinding },
      stdio: 'inherit',
    });
    let markReady: () => void;
    this.coreStarted = false;
    this.coreReady = new Promise((resolve) => (markReady = resolve));
    this.core.on('message', (message: CoreToMain) => {
      if (message.type === 'ready') {
        this.coreStarted = true;
        markReady();
      }
      else if (message.type === 'event') this.onCoreEvent(message);
      else {
        this.pending.get(message.id)?.(message);
        this.pending.delete(message.id);
      }
    });
    this.core.on('exit', (code) => this.onCoreExit(code));
  }

  private request(message: Request): Promise<Reply | { type: 'gone' }> {
    const id = this.nextId++;
    const core = this.core;
    return new Promise((resolve) => {
      // Pending from now on, so a core that dies even before it is ready answers 'gone'.
      this.pending.set(id, resolve);
      void this.coreReady.then(() => {
        if (this.pending.has(id) && core === this.core) core.postMessage({ ...message, id });
      });
    });
  }

  private connectEvents(): void {
    const { port1, port2 } = new MessageChannelMain();
    void this.coreReady.then(() => {
      this.core.postMessage({ type: 'events-port' } satisfies MainToCore, [port1]);
      this.window.webContents.postMessage(EVENTS_PORT_CHANNEL, null, [port2]);
    });
  }

  private onCoreEvent(message: Extract<CoreToMain, { type: 'event' }>): void {
    if (message.event.type !== 'project.changed') return;
    this.projectDir = message.event.dir;
    this.window.setTitle(this.projectDir ? `${path.basename(this.projectDir)} — Contrast Studio` : 'Contrast Studio');
    this.onProjectChanged(this);
  }

  /** A crashed core (e.g. out of memory) costs the open requests, not the window: restart it and reopen the project. */
  private onCoreExit(code: number): void {
    for (const resolve of this.pending.values()) resolve({ type: 'gone' } as never);
    this.pending.clear();
    if (this.closing || this.window.isDestroyed()) return;
    if (!this.coreStarted) {
      // Restarting a core that cannot even start (e.g. a missing native build) would only loop.
      void dialog.showMessageBox(this.window, {
        type: 'error',
        message: 'The studio core could not start.',
        detail: `Exit code ${code}; its error is in the terminal or system log. Reinstalling the app usually fixes a damaged install.`,
      });
      return;
    }
    const project = this.projectDir;
    this.startCore();
    void this.startup(project ?? undefined).then(() => this.window.webContents.reload());
    void dialog.showMessageBox(this.window, {
      type: 'warning',
      message: 'The studio core stopped unexpectedly and was restarted.',
      detail: `Exit code ${code}. ${project ? `The project ${project} was reopened; a job that was running is marked interrupted and can be resumed.` : ''}`,
    });
  }

  private async onClose(event: Electron.Event): Promise<void> {
    if (this.closing) return;
    event.preventDefault();
    this.saveState();
    const status = await this.call('project.status', {});
    const job = status.ok ? (status.value as { activeJob: { kind: string } | null }).activeJob : null;
    if (job) {
      const { response } = await dialog.showMessageBox(this.window, {
        type: 'question',
        buttons: ['Stop and Close', 'Keep Open'],
        defaultId: 1,
        cancelId: 1,
        message: `A ${job.kind} job is running in this window.`,
        detail: 'Closing the window stops it. A stopped training run can be resumed from its last checkpoint.',
      });
      if (response !== 0) return;
    }
    this.closing = true;
    await new Promise<void>((resolve) => {
      const stuck = setTimeout(() => this.core.kill(), SHUTDOWN_GRACE_MS);
      this.core.once('exit', () => {
        clearTimeout(stuck);
        resolve();
      });
      this.core.postMessage({ type: 'shutdown' } satisfies MainToCore);
    });
    this.window.destroy();
  }

  private saveState(): void {
    const maximized = this.window.isMaximized();
    writeWindowState(this.stateFile, { bounds: maximized ? this.window.getNormalBounds() : this.window.getBounds(), maximized });
  }
}

function coreGone(): IpcFailure {
  return { ok: false, status: 503, error: { code: 'core_restarted', message: 'the studio core restarted while this was running; try again' } };
}
