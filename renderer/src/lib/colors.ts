/** Colours for classes (swatches, map points, chart series), distinct for the first ten classes. */
const palette = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#79706e'];

export const unlabelledColor = '#b8bec7';

export function classColor(classId: number | null | undefined, classIds: number[]): string {
  if (classId === null || classId === undefined) return unlabelledColor;
  const index = classIds.indexOf(classId);
  if (index < 0) return unlabelledColor;
  const base = palette[index % palette.length];
  return index < palette.length ? base : shade(base, index);
}

/** Past ten classes, repeat the palette slightly darker per round so neighbours still differ. */
function shade(hex: string, index: number): string {
  const factor = 1 - 0.18 * Math.floor(index / palette.length);
  const channel = (offset: number) => Math.round(parseInt(hex.slice(offset, offset + 2), 16) * Math.max(0.3, factor));
  return `rgb(${channel(1)}, ${channel(3)}, ${channel(5)})`;
}
