/**
 * The rooms of the source tree and which rooms each may import. Read by test/unit/architecture.test.ts.
 * Imports point down: front ends → services → engine/media/jobs → store → contract.
 */
import fs from 'node:fs';
import path from 'node:path';

type Room = 'contract' | 'store' | 'media' | 'method' | 'engine' | 'jobs' | 'services' | 'transports' | 'cli' | 'main' | 'renderer';

/** Longest prefix first: engine/simclr is the method, the rest of engine is engine. */
const ROOM_PREFIXES: [string, Room][] = [
  ['app/contract/', 'contract'],
  ['app/store/', 'store'],
  ['app/media/', 'media'],
  ['app/engine/simclr/', 'method'],
  ['app/engine/', 'engine'],
  ['app/jobs/', 'jobs'],
  ['app/services/', 'services'],
  ['app/transports/', 'transports'],
  ['app/cli/', 'cli'],
  ['app/cli.ts', 'cli'],
  ['main/', 'main'],
  ['renderer/src/', 'renderer'],
];

/**
 * What each room may import besides itself. The CLI and the Electron main process are the
 * composition roots that start a transport, so they may import transports; nothing else does.
 */
const MAY_IMPORT: Record<Room, Room[]> = {
  contract: [],
  store: ['contract'],
  method: [],
  media: ['contract', 'store'],
  engine: ['contract', 'store', 'media', 'method'],
  jobs: ['contract', 'store', 'engine', 'method'],
  services: ['contract', 'store', 'media', 'engine', 'method', 'jobs'],
  transports: ['contract', 'services'],
  cli: ['contract', 'services', 'transports'],
  main: ['contract', 'services', 'transports', 'cli'],
  renderer: ['contract'],
};

/** Packages a room may import; unlisted rooms may import any package. The method is plain TF.js. */
const PACKAGES_ALLOWED: Partial<Record<Room, RegExp>> = {
  method: /^@tensorflow\/tfjs(-core)?$/,
  contract: /^valibot$/,
  renderer: /^(svelte(\/.*)?|valibot)$/,
};

export function roomOf(file: string): Room | null {
  const normal = file.split(path.sep).join('/');
  return ROOM_PREFIXES.find(([prefix]) => normal === prefix || normal.startsWith(prefix))?.[1] ?? null;
}

const IMPORT_PATTERN = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(source: string): string[] {
  return [...source.matchAll(IMPORT_PATTERN)].map((m) => m[1] ?? m[2]);
}

export function findImportViolations(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const room = roomOf(file);
    if (!room) continue;
    for (const spec of importsOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = path.relative(root, path.resolve(root, path.dirname(file), spec));
        const targetRoom = roomOf(target);
        if (targetRoom !== room && !(targetRoom && MAY_IMPORT[room].includes(targetRoom))) problems.push(`${file} (${room}) imports ${target} (${targetRoom ?? 'outside the rooms'})`);
      } else if (!spec.startsWith('node:') || room === 'renderer' || room === 'method' || room === 'contract') {
        const allowed = PACKAGES_ALLOWED[room];
        if (allowed && !allowed.test(spec)) problems.push(`${file} (${room}) imports package ${spec}`);
      }
    }
  }
  return problems;
}

const SQL_PATTERN = /\.(prepare|pragma)\(|\bSELECT\b[^;]{0,300}?\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bDELETE\s+FROM\b|\bUPDATE\s+\w+\s+SET\b/;

/** Files outside app/store whose code (comments aside) holds SQL or calls the database directly. */
export function findSqlOutsideStore(root: string, files: string[]): string[] {
  return files.filter((file) => roomOf(file) !== 'store' && SQL_PATTERN.test(withoutComments(fs.readFileSync(path.join(root, file), 'utf8'))));
}

function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}
