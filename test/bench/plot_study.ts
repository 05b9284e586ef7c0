/**
 * Draws docs/study/results.jsonl (written by labels_study.ts) as accuracy against minutes, one line
 * per arm and label share, into docs/study/accuracy.svg, and prints the table for docs/study/README.md.
 *
 *   node --import tsx test/bench/plot_study.ts
 */
import fs from 'node:fs';
import path from 'node:path';

const DIR = path.resolve(import.meta.dirname, '../../docs/study');
interface Entry {
  arm: string;
  minutes: number;
  labels: string;
  wallSeconds: number;
  accuracy?: number;
  finetuned?: number;
  distilled?: number;
  supervised?: number;
}

/** The reference reports three networks; each is its own line. Its arms run alone join those lines. */
function points(entry: Entry): { series: string; accuracy: number }[] {
  const simclr = () => [
    { series: 'PyTorch: fine-tuned', accuracy: entry.finetuned! },
    { series: 'PyTorch: distilled', accuracy: entry.distilled! },
  ];
  const labelsOnly = () => [{ series: 'PyTorch: labels only', accuracy: entry.supervised! }];
  if (entry.arm === 'PyTorch reference') return [...simclr(), ...labelsOnly()];
  if (entry.arm === 'PyTorch reference, SimCLR stages') return simclr();
  if (entry.arm === 'PyTorch reference, labels only') return labelsOnly();
  return [{ series: entry.arm, accuracy: entry.accuracy! }];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const entries = fs.readFileSync(path.join(DIR, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Entry);
const series = new Map<string, [number, number][]>();
for (const entry of entries) {
  for (const p of points(entry)) {
    const key = `${p.series} (${entry.labels})`;
    series.set(key, [...(series.get(key) ?? []), [entry.minutes, p.accuracy]]);
  }
}

const W = 640, H = 380, M = { left: 56, right: 210, top: 20, bottom: 44 };
const maxMinutes = Math.max(...entries.map((e) => e.minutes));
const x = (minutes: number) => M.left + (minutes / maxMinutes) * (W - M.left - M.right);
const y = (accuracy: number) => H - M.bottom - accuracy * 2 * (H - M.top - M.bottom); // 0–50%
const colours = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];
const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`];
for (let a = 0; a <= 0.5; a += 0.1) parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(a)}" y2="${y(a)}" stroke="#ddd"/><text x="${M.left - 6}" y="${y(a) + 4}" text-anchor="end">${Math.round(a * 100)}%</text>`);
for (const minutes of [...new Set(entries.map((e) => e.minutes))]) parts.push(`<text x="${x(minutes)}" y="${H - M.bottom + 16}" text-anchor="middle">${minutes}</text>`);
parts.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 6}" text-anchor="middle">minutes (2 cores)</text>`);
[...series.entries()].forEach(([name, pts], i) => {
  const colour = colours[i % colours.length];
  const sorted = pts.sort((a, b) => a[0] - b[0]);
  // Repeats at one budget (seeds) are all drawn; the line joins their medians.
  const budgets = [...new Set(sorted.map(([m]) => m))];
  const medians = budgets.map((m) => [m, median(sorted.filter(([n]) => n === m).map(([, a]) => a))]);
  parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${medians.map(([m, a]) => `${x(m)},${y(a)}`).join(' ')}"/>`);
  for (const [m, a] of sorted) parts.push(`<circle cx="${x(m)}" cy="${y(a)}" r="3" fill="${colour}"/>`);
  parts.push(`<text x="${W - M.right + 10}" y="${M.top + 14 + i * 16}" fill="${colour}">${name}</text>`);
});
parts.push('</svg>');
fs.writeFileSync(path.join(DIR, 'accuracy.svg'), parts.join('\n') + '\n');

console.log('| minutes | labels | arm | held-out accuracy | wall time |');
console.log('| --- | --- | --- | --- | --- |');
for (const entry of entries) {
  const accuracy = points(entry).map((p) => `${p.series.replace('PyTorch: ', '')} ${(p.accuracy * 100).toFixed(1)}%`).join(', ');
  console.log(`| ${entry.minutes} | ${entry.labels} | ${entry.arm} | ${accuracy} | ${(entry.wallSeconds / 60).toFixed(1)} min |`);
}
