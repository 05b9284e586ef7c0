/**
 * The QR encoder against symbols made by another encoder (Python qrcode 8.2, see
 * test/fixtures/qr/make_reference.py) and against the standard's published numbers: the format
 * bits of level M (ISO 18004 table C.1) and the 1-M "HELLO WORLD" codewords.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { qrForTerminal } from '../../app/cli/terminal_qr.ts';
import { encodeQr, encodeQrWithMask, formatBits, penalty, QR_MAX_BYTES, reedSolomonRemainder, type QrMatrix } from '../../app/contract/qr_code.ts';

interface ReferenceSymbol {
  text: string;
  version: number;
  penalties: number[];
  mask: number;
  rows: string[];
}

const reference = JSON.parse(fs.readFileSync(new URL('../fixtures/qr/reference.json', import.meta.url), 'utf8')) as {
  symbols: ReferenceSymbol[];
  everyMask: { mask: number; rows: string[] }[];
  formatBits: number[];
};

const rowsOf = (matrix: QrMatrix) => matrix.map((row) => row.map((dark) => (dark ? '1' : '0')).join(''));

describe('QR code encoder', () => {
  it('draws the same symbols as the reference encoder, versions 1, 2, 4, 5, 8, 9 and 10', () => {
    assert.deepEqual(
      reference.symbols.map((s) => s.version),
      [1, 2, 5, 4, 8, 9, 10],
    );
    for (const symbol of reference.symbols) assert.deepEqual(rowsOf(encodeQr(symbol.text)), symbol.rows, symbol.text);
  });

  it('draws each of the eight masks like the reference', () => {
    for (const { mask, rows } of reference.everyMask) assert.deepEqual(rowsOf(encodeQrWithMask('https://example.org/', 2, mask)), rows, `mask ${mask}`);
  });

  it("scores every mask as the reference's penalty does", () => {
    for (const symbol of reference.symbols) {
      const scores = symbol.penalties.map((_, mask) => penalty(encodeQrWithMask(symbol.text, symbol.version, mask)));
      assert.deepEqual(scores, symbol.penalties, symbol.text);
    }
  });

  it('has the format bits of level M from the standard', () => {
    const table = ['101010000010010', '101000100100101', '101111001111100', '101101101001011', '100010111111001', '100000011001110', '100111110010111', '100101010100000'];
    assert.deepEqual(
      table.map((_, mask) => formatBits(mask).toString(2).padStart(15, '0')),
      table,
    );
    assert.deepEqual(reference.formatBits.map((bits) => bits.toString(2).padStart(15, '0')), table);
  });

  it("computes the published error correction codewords of 'HELLO WORLD' at 1-M", () => {
    const data = [0x20, 0x5b, 0x0b, 0x78, 0xd1, 0x72, 0xdc, 0x4d, 0x43, 0x40, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11];
    assert.deepEqual(reedSolomonRemainder(data, 10), [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
  });

  it('keeps the finder, timing and dark modules in place', () => {
    const rows = rowsOf(encodeQr('http://192.168.1.20:51234/#token=abc'));
    const size = rows.length;
    const finder = ['1111111', '1000001', '1011101', '1011101', '1011101', '1000001', '1111111'];
    for (const [top, left] of [[0, 0], [0, size - 7], [size - 7, 0]]) assert.deepEqual(rows.slice(top, top + 7).map((row) => row.slice(left, left + 7)), finder);
    const timing = Array.from({ length: size - 16 }, (_, i) => (i % 2 === 0 ? '1' : '0')).join('');
    assert.equal(rows[6].slice(8, size - 8), timing);
    assert.equal(rows.slice(8, size - 8).map((row) => row[6]).join(''), timing);
    assert.equal(rows[size - 8][8], '1');
  });

  it('refuses text beyond version 10', () => {
    assert.equal(QR_MAX_BYTES, 213);
    assert.equal(encodeQr('x'.repeat(QR_MAX_BYTES)).length, 57);
    assert.throws(() => encodeQr('x'.repeat(QR_MAX_BYTES + 1)), /at most 213 bytes/);
  });
});

describe('QR code in a terminal', () => {
  it('draws two rows of modules to a line inside a four-module quiet zone, black on white in colour', () => {
    const matrix = encodeQr('http://192.168.1.20:51234/#token=abc');
    const lines = qrForTerminal(matrix, false).split('\n').slice(0, -1);
    const size = matrix.length + 8;
    assert.equal(lines.length, Math.ceil(size / 2));
    const drawn = Array.from({ length: size }, (_, row) =>
      [...lines[row >> 1]].map((block) => (row % 2 === 0 ? block === '█' || block === '▀' : block === '█' || block === '▄')),
    );
    const expected = Array.from({ length: size }, (_, row) => Array.from({ length: size }, (_, column) => matrix[row - 4]?.[column - 4] === true));
    assert.deepEqual(drawn, expected);
    const coloured = qrForTerminal(matrix, true).split('\n')[0];
    assert.ok(coloured.startsWith('\x1b[30;47m') && coloured.endsWith('\x1b[0m'), JSON.stringify(coloured.slice(0, 12)));
  });
});
