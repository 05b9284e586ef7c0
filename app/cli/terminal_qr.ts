/**
 * A QR code drawn with half-block characters, two rows of modules to a line, inside the
 * four-module quiet zone scanners need. In a terminal it is drawn black on white with ANSI colours,
 * so it scans whatever the terminal's own colours; in a file, dark modules are the blocks.
 */
import type { QrMatrix } from '../contract/qr_code.ts';

const QUIET_ZONE = 4;
const BLACK_ON_WHITE = '\x1b[30;47m';
const RESET = '\x1b[0m';

export function qrForTerminal(matrix: QrMatrix, colours: boolean): string {
  const size = matrix.length + 2 * QUIET_ZONE;
  const dark = (row: number, column: number) => matrix[row - QUIET_ZONE]?.[column - QUIET_ZONE] === true;
  const lines: string[] = [];
  for (let row = 0; row < size; row += 2) {
    let line = '';
    for (let column = 0; column < size; column++) line += halfBlock(dark(row, column), row + 1 < size && dark(row + 1, column));
    lines.push(colours ? `${BLACK_ON_WHITE}${line}${RESET}` : line);
  }
  return lines.join('\n') + '\n';
}

function halfBlock(top: boolean, bottom: boolean): string {
  if (top && bottom) return '█';
  if (top) return '▀';
  return bottom ? '▄' : ' ';
}
