/**
 * The layout's rules, checked on the source text: imports only point down, and all SQL lives in
 * app/store/. A new file falls under the room of its folder; a new room must be added here.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { findImportViolations, findSqlOutsideStore, roomOf } from '../architecture_rules.ts';

const root = path.resolve(import.meta.dirname, '../..');

describe('layout rules', () => {
  it('puts every source file in a known room', () => {
    const unplaced = sourceFiles().filter((file) => roomOf(file) === null);
    assert.deepEqual(unplaced, []);
  });

  it('lets imports point only the allowed ways', () => {
    assert.deepEqual(findImportViolations(root, sourceFiles()), []);
  });

  it('keeps SQL inside app/store', () => {
    assert.deepEqual(findSqlOutsideStore(root, sourceFiles()), []);
  });

  it('catches a wrong import and stray SQL (the rules are not vacuous)', () => {
    const dir = fs.mkdtempSync(path.join(root, 'app/store/.rule-probe-'));
    try {
      const file = path.join(dir, '../../services/.probe.ts');
      fs.writeFileSync(path.join(dir, 'probe.ts'), "import { x } from '../../engine/simclr/model.ts';\n");
      fs.writeFileSync(file, "db.prepare('SELECT 1 FROM images');\n");
      const probes = [path.relative(root, path.join(dir, 'probe.ts')), path.relative(root, file)];
      try {
        assert.equal(findImportViolations(root, probes).length, 1);
        assert.equal(findSqlOutsideStore(root, probes).length, 1);
      } finally {
        fs.rmSync(file);
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.(ts|svelte|mjs)$/.test(entry.name) && !/\.test\.ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  for (const dir of ['app', 'main', 'renderer/src']) walk(dir);
  return out.sort();
}
