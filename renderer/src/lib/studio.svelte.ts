/**
 * The UI's shared state: which Api it talks to, the open project's status, the screen shown,
 * live job and import progress, and messages for the user. Screens read and update it; nothing
 * else holds global state.
 */
import {
  ApiError,
  type Api,
  type ImportProgress,
  type ImportSummary,
  type Input,
  type OperationName,
  type Output,
  type PredictProgress,
  type PredictSummary,
  type ProjectStatus,
  type ServerEvent,
  type TryImage,
} from '../../../app/contract/operations.ts';
import { projectKey } from './format.ts';
import { assignClassKeys, chooseClassKey, type ClassKeys } from './label_keys.ts';

export type ScreenName = 'projects' | 'import' | 'gallery' | 'label' | 'train' | 'results' | 'try' | 'export';
/** A teammate browses and labels; the server refuses them the rest, so the UI does not offer it. */
export const GUEST_SCREENS: ScreenName[] = ['gallery', 'label'];

export interface Backend {
  api: Api;
  /** Where an image's thumbnail or original can be loaded from. */
  mediaUrl(kind: 'thumb' | 'image', imageId: number, projectKey: string): string;
  /** A native folder picker (desktop only). */
  chooseFolder?: (title: string) => Promise<string | null>;
  /** A native picker of image files (desktop only), read by the desktop app: the page never sees their paths. */
  chooseImages?: (title: string) => Promise<(TryImage | { name: string; error: string })[] | null>;
  onConnection?: (listener: (state: 'connecting' | 'open' | 'lost') => void) => () => void;
}

export interface Toast {
  id: number;
  kind: 'info' | 'success' | 'error';
  text: string;
  /** A button in the toast, e.g. Undo. */
  action?: { label: string; run: () => void };
}

export interface JobProgressEvent extends Extract<ServerEvent, { type: 'job.progress' }> {}

/** A run of images for the labeller to walk through, handed over by the gallery or results. */
export interface LabelSequence {
  title: string;
  ids: number[];
  start: number;
}

let nextToast = 1;
const LABELS_CHANGED_COALESCE_MS = 250;

class Studio {
  backend: Backend = $state.raw(null as unknown as Backend);
  status: ProjectStatus | null = $state.raw(null);
  screen: ScreenName = $state('projects');
  toasts: Toast[] = $state([]);
  connection: 'connecting' | 'open' | 'lost' = $state('open');
  /** Bumped whenever labels or classes change, so views showing them reload. */
  labelsVersion = $state(0);
  /** Bumped when a run finishes, so runs, results and predictions reload. */
  runsVersion = $state(0);
  jobProgress: JobProgressEvent | null = $state.raw(null);
  importProgress: ImportProgress | null = $state.raw(null);
  importRunning = $state(false);
  importResult: { summary: ImportSummary | null; error: string | null } | null = $state.raw(null);
  predictProgress: PredictProgress | null = $state.raw(null);
  predictRunning = $state(false);
  predictResult: { summary: PredictSummary | null; error: string | null } | null = $state.raw(null);
  labelSequence: LabelSequence | null = $state.raw(null);
  /** Who this tab works as: the host, or a teammate through their invitation link. */
  me: { role: 'host' | 'guest'; name: string } = $state.raw({ role: 'host', name: 'host' });
  /** Bumped when invitations, connections or overlap change, so the team dialog reloads. */
  teamVersion = $state(0);
  // Deriveds notify only when their value changes, so effects keyed on them do not rerun on every
  // status refresh (which replaces the whole status object after each label).
  readonly projectDir: string | null = $derived(this.status?.project?.dir ?? null);
  readonly predictionRunId: number | null = $derived(this.status?.project?.predictionRunId ?? null);
  readonly embeddingRunId: number | null = $derived(this.status?.project?.embeddingRunId ?? null);
  /** Bumped when the user picks a class key, so the keys are read again from storage. */
  private chosenKeysVersion = $state(0);
  /** Which key labels with which class in this project. */
  readonly classKeys: ClassKeys = $derived.by(() => {
    void this.chosenKeysVersion;
    return assignClassKeys(this.classes.map((c) => c.id), chosenKeys(this.projectDir));
  });

  get project() {
    return this.status?.project ?? null;
  }

  get isGuest(): boolean {
    return this.me.role === 'guest';
  }

  async loadMe(): Promise<void> {
    try {
      this.me = await this.call('team.me', {});
    } catch (error) {
      this.showError(error);
    }
  }

  get classes() {
    return this.status?.project?.classes ?? [];
  }

  start(backend: Backend): void {
    this.backend = backend;
    backend.api.onEvent((event) => this.handleEvent(event));
    backend.onConnection?.((state) => (this.connection = state));
  }

  call<N extends OperationName>(name: N, input: Input<N>): Promise<Output<N>> {
    return this.backend.api.call(name, input);
  }

  /** Calls an operation and shows its failure as a message; resolves to undefined when it failed. */
  async attempt<N extends OperationName>(name: N, input: Input<N>): Promise<Output<N> | undefined> {
    try {
      return await this.call(name, input);
    } catch (error) {
      this.showError(error);
      return undefined;
    }
  }

  thumbUrl(imageId: number): string {
    return this.backend.mediaUrl('thumb', imageId, this.key);
  }

  imageUrl(imageId: number): string {
    return this.backend.mediaUrl('image', imageId, this.key);
  }

  private get key(): string {
    return projectKey(this.status?.project?.dir ?? '');
  }

  async refreshStatus(): Promise<void> {
    try {
      this.status = await this.call('project.status', {});
    } catch (error) {
      this.showError(error);
    }
  }

  setStatus(status: ProjectStatus): void {
    this.status = status;
    if (!status.project) this.screen = 'projects';
  }

  go(screen: ScreenName): void {
    if (screen !== 'projects' && !this.project) {
      this.notify('info', 'Open or create a project first.');
      return;
    }
    this.screen = this.isGuest && !GUEST_SCREENS.includes(screen) ? 'label' : screen;
    if (typeof location !== 'undefined') history.replaceState(null, '', `#/${screen}`);
  }

  /** Gives a class a key (swapping with the class that held it); kept per project in this browser. */
  setClassKey(classId: number, key: string): void {
    if (!this.projectDir) return;
    localStorage.setItem(chosenKeysItem(this.projectDir), JSON.stringify(chooseClassKey(this.classKeys, classId, key)));
    this.chosenKeysVersion++;
  }

  openLabeller(sequence: LabelSequence | null): void {
    this.labelSequence = sequence;
    this.go('label');
  }

  /** Shows a message and returns its id; one with an action stays longer, to leave time to use it. */
  /** Copies a path the screen shows (where files were written) and says whether it worked. */
  async copyPath(path: string): Promise<void> {
    try {
      await navigator.clipboard.writeText(path);
      this.notify('info', 'Path copied.');
    } catch {
      this.notify('error', 'Could not copy: select the path and copy it by hand.');
    }
  }

  notify(kind: Toast['kind'], text: string, action?: Toast['action']): number {
    const toast = { id: nextToast++, kind, text, action };
    this.toasts = [...this.toasts, toast].slice(-4);
    setTimeout(() => this.dismiss(toast.id), action ? 10_000 : kind === 'error' ? 8000 : 4000);
    return toast.id;
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  showError(error: unknown): void {
    this.notify('error', readableError(error));
  }

  private labelsTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * With teammates labelling, label changes arrive several a second: views reload once per burst,
   * not once per label, or every tab would ask the server again for each teammate's keypress.
   */
  private labelsChangedSoon(): void {
    this.labelsTimer ??= setTimeout(() => {
      this.labelsTimer = null;
      this.labelsVersion++;
      void this.refreshStatus();
    }, LABELS_CHANGED_COALESCE_MS);
  }

  private handleEvent(event: ServerEvent): void {
    switch (event.type) {
      case 'job.progress':
        this.jobProgress = event;
        if (!this.status?.activeJob) void this.refreshStatus();
        break;
      case 'job.started':
        void this.refreshStatus();
        break;
      case 'job.warning':
        this.notify('info', `Run #${event.runId}: ${event.message}`);
        break;
      case 'job.epoch':
        break;
      case 'job.finished':
        this.jobProgress = null;
        this.runsVersion++;
        this.labelsVersion++;
        if (event.status === 'done') this.notify('success', `${capitalise(event.kind)} run #${event.runId} finished.`);
        else if (event.status === 'failed') this.notify('error', `${capitalise(event.kind)} run #${event.runId} failed: ${event.error ?? 'unknown error'}`);
        else this.notify('info', `${capitalise(event.kind)} run #${event.runId} ${event.status}.`);
        void this.refreshStatus();
        break;
      case 'import.progress': {
        const { type: _type, ...progress } = event;
        this.importProgress = progress;
        this.importRunning = true;
        break;
      }
      case 'import.finished':
        this.importRunning = false;
        this.importResult = { summary: event.summary, error: event.error };
        this.labelsVersion++;
        void this.refreshStatus();
        break;
      case 'predict.progress': {
        const { type: _type, ...progress } = event;
        this.predictProgress = progress;
        this.predictRunning = true;
        break;
      }
      case 'predict.finished':
        this.predictRunning = false;
        this.predictResult = { summary: event.summary, error: event.error };
        void this.refreshStatus();
        break;
      case 'team.changed':
        this.teamVersion++;
        break;
      case 'labels.changed':
        this.labelsChangedSoon();
        break;
      case 'project.changed':
        // The last import's and folder prediction's progress and summary belong to the project that was open.
        this.importProgress = null;
        this.importResult = null;
        this.predictProgress = null;
        this.predictResult = null;
        this.labelsVersion++;
        this.runsVersion++;
        void this.refreshStatus();
        break;
    }
  }
}

/**
 * The contract has no place for UI preferences, so chosen keys live in this browser's storage,
 * one entry per project folder.
 */
function chosenKeysItem(projectDir: string): string {
  return `contrast.classKeys:${projectDir}`;
}

function chosenKeys(projectDir: string | null): Record<number, string> {
  if (!projectDir) return {};
  try {
    const stored = JSON.parse(localStorage.getItem(chosenKeysItem(projectDir)) ?? '{}');
    return stored && typeof stored === 'object' ? stored : {};
  } catch {
    return {}; // unreadable storage: fall back to the default keys
  }
}

export function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function readableError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return `Something went wrong: ${error.message}`;
  return `Something went wrong: ${String(error)}`;
}

export const studio = new Studio();
