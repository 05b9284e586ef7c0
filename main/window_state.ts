/**
 * Remembers where the studio window was, and puts it back only where the user can reach it
 * (a monitor may have been unplugged since). No electron import: unit-tested.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Rectangle {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface WindowState {
  bounds: Rectangle;
  maximized: boolean;
}

export const DEFAULT_SIZE = { width: 1280, height: 820 };
export const MINIMUM_WINDOW_SIZE = { width: 640, height: 480 };
/** How much of the title bar must lie on a screen for the window to be grabbable there. */
const REACHABLE = { width: 120, height: 40 };
/** Offset of each further window so it does not hide the one before. */
const CASCADE_STEP = 28;

export const WINDOW_STATE_FILE = 'window-state.json';

export function readWindowState(file: string): WindowState | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null; // first start or a damaged file: open at the default size
  }
  const state = parsed as Partial<WindowState> | null;
  const bounds = state?.bounds;
  const numbers = bounds && [bounds.x, bounds.y, bounds.width, bounds.height].every((n) => Number.isFinite(n));
  if (!numbers) return null;
  return { bounds: { x: bounds.x, y: bounds.y, width: bounds.width, height: bounds.height }, maximized: state.maximized === true };
}

export function writeWindowState(file: string, state: WindowState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(state));
  fs.renameSync(temporary, file); // a crash mid-write leaves the previous state, not half a file
}

/**
 * Bounds for a new window: the saved ones, shifted for each window already open, if the title
 * bar still lands on one of the screens' work areas; otherwise the default size, which Electron
 * centres on the primary screen.
 */
export function placeWindow(
  saved: WindowState | null,
  workAreas: Rectangle[],
  openWindows: number,
): { bounds: Partial<Rectangle> & { width: number; height: number }; maximized: boolean } {
  if (!saved) return { bounds: { ...DEFAULT_SIZE }, maximized: false };
  const shift = CASCADE_STEP * openWindows;
  const bounds = {
    x: Math.round(saved.bounds.x + shift),
    y: Math.round(saved.bounds.y + shift),
    width: Math.round(Math.max(MINIMUM_WINDOW_SIZE.width, saved.bounds.width)),
    height: Math.round(Math.max(MINIMUM_WINDOW_SIZE.height, saved.bounds.height)),
  };
  const titleBar = { x: bounds.x, y: bounds.y, width: Math.min(bounds.width, REACHABLE.width), height: REACHABLE.height };
  // Only the first window takes over the saved maximised state; later ones cascade over it.
  const maximized = saved.maximized && openWindows === 0;
  if (!workAreas.some((area) => contains(area, titleBar))) {
    const screen = largest(workAreas);
    return { bounds: { width: Math.min(bounds.width, screen.width), height: Math.min(bounds.height, screen.height) }, maximized };
  }
  return { bounds, maximized };
}

function contains(outer: Rectangle, inner: Rectangle): boolean {
  return (
    inner.x >= outer.x &&
    inner.y >= outer.y &&
    inner.x + inner.width <= outer.x + outer.width &&
    inner.y + inner.height <= outer.y + outer.height
  );
}

function largest(areas: Rectangle[]): { width: number; height: number } {
  if (areas.length === 0) return DEFAULT_SIZE;
  return areas.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
}
