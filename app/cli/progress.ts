import type { CliIO } from './command.ts';

/** Draws a one-line progress bar on a terminal's stderr; prints nothing when stderr is not a terminal. */
export function progressBar(io: CliIO, label: string) {
  let drawn = false;
  return {
    update(done: number, total: number, detail: string) {
      if (!io.tty) return;
      const fraction = total > 0 ? Math.min(1, done / total) : 0;
      const width = 30;
      const filled = Math.round(fraction * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      io.err(`\r${label} ${bar} ${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} ${detail}\x1b[K`);
      drawn = true;
    },
    finish() {
      if (drawn) io.err('\n');
      drawn = false;
    },
  };
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
