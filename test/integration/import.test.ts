import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { spawn } from 'node:child_process';
import sharp from 'sharp';
import { importPaths } from '../../app/media/import.ts';
import { thumbnailMimeType } from '../../app/media/decode.ts';
import { openProject } from '../../app/store/project.ts';
import { listClasses } from '../../app/store/labels.ts';
import { runCli, tempDir, writeImage, CLI } from '../helpers.ts';

/** A PNG whose header claims 30000x30000 pixels: the import must refuse it before decoding. */
function pngBomb(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(zlib.crc32(body), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(30000, 0);
  header.writeUInt32BE(30000, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(1000))), chunk('IEND', Buffer.alloc(0))]);
}

function count(db: import('better-sqlite3').Database, sql: string): number {
  return (db.prepare(sql).get() as { n: number }).n;
}

test('imports every supported format, applies EXIF orientation and records each bad file with its reason', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  await writeImage(path.join(src, 'cat', 'a.JPG'), { seed: 1 });
  await writeImage(path.join(src, 'cat', 'b.png'), { seed: 2, format: 'png' });
  await writeImage(path.join(src, 'dog', 'c.webp'), { seed: 3, format: 'webp', colour: [20, 20, 200] });
  await writeImage(path.join(src, 'dog', 'ünïcödé 画像.jpeg'), { seed: 4, colour: [20, 20, 200] });
  const raw = { raw: { width: 20, height: 10, channels: 3 as const } };
  await sharp(Buffer.alloc(600, 90), raw).gif().toFile(path.join(src, 'e.gif'));
  await sharp(Buffer.alloc(600, 120), raw).tiff().toFile(path.join(src, 'f.tif'));
  await sharp(Buffer.alloc(600, 150), raw).avif().toFile(path.join(src, 'g.avif'));
  // 20x10 stored landscape, EXIF orientation 6 (rotate 90°): shown portrait, 10x20.
  await sharp(Buffer.alloc(600, 60), raw).jpeg().withMetadata({ orientation: 6 }).toFile(path.join(src, 'rotated.jpg'));
  fs.writeFileSync(path.join(src, 'h.bmp'), bmp24(3, 2, [0, 0, 255]));
  fs.writeFileSync(path.join(src, 'empty.jpg'), '');
  fs.writeFileSync(path.join(src, 'text.jpg'), 'this is not a picture');
  const full = fs.readFileSync(path.join(src, 'cat', 'a.JPG'));
  fs.writeFileSync(path.join(src, 'truncated.jpg'), full.subarray(0, Math.floor(full.length / 2)));
  fs.writeFileSync(path.join(src, 'bomb.png'), pngBomb());
  fs.writeFileSync(path.join(src, 'notes.txt'), 'ignored: not an image extension');

  const project = openProject(path.join(dir, 'p'), { create: true });
  const summary = await importPaths(project, [src], { labelsFromFolders: true });
  const reasons = Object.fromEntries(summary.problems.map((p) => [path.basename(p.path), p.reason]));
  assert.equal(summary.added, 9);
  assert.equal(summary.errors, 4);
  assert.match(reasons['empty.jpg'], /empty file/);
  assert.match(reasons['text.jpg'], /not an image/);
  assert.match(reasons['truncated.jpg'], /corrupt or truncated/);
  assert.match(reasons['bomb.png'], /30000x30000 pixels, above the limit/);
  const rows = project.db.prepare('SELECT path, width, height, format FROM images').all() as { path: string; width: number; height: number; format: string }[];
  const byName = Object.fromEntries(rows.map((r) => [path.basename(r.path), r]));
  assert.deepEqual([byName['rotated.jpg'].width, byName['rotated.jpg'].height], [10, 20]);
  assert.deepEqual(Object.values(byName).map((r) => r.format).sort(), ['avif', 'bmp', 'gif', 'jpeg', 'jpeg', 'jpeg', 'png', 'tiff', 'webp']);
  assert.ok(byName['ünïcödé 画像.jpeg'], 'unicode file name imported');
  const bmpThumb = project.db.prepare("SELECT thumbnail FROM images WHERE format = 'bmp'").get() as { thumbnail: Buffer };
  const { data } = await sharp(bmpThumb.thumbnail).raw().toBuffer({ resolveWithObject: true });
  assert.ok(data[2] > 200 && data[0] < 50, `BMP decoded as blue, got rgb ${[...data.subarray(0, 3)]}`);
  assert.deepEqual(listClasses(project.db).map((c) => [c.name, c.labels]), [['cat', 2], ['dog', 2]]);
  project.close();
});

test('a second import of the same folder adds nothing; copies with the same content are skipped as duplicates', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  for (let i = 0; i < 5; i++) await writeImage(path.join(src, `${i}.jpg`), { seed: i });
  fs.copyFileSync(path.join(src, '0.jpg'), path.join(src, 'copy-of-0.jpg'));
  const project = openProject(path.join(dir, 'p'), { create: true });
  const first = await importPaths(project, [src]);
  assert.deepEqual([first.added, first.duplicates, first.errors], [5, 1, 0]);
  assert.match(first.problems[0].reason, /same content as .*0\.jpg/);
  const second = await importPaths(project, [src]);
  assert.deepEqual([second.added, second.duplicates, second.alreadyKnown], [0, 0, 6]);
  assert.equal(count(project.db, 'SELECT COUNT(*) AS n FROM images'), 5);
  project.close();
});

test('symlink loops are not followed twice', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  await writeImage(path.join(src, 'inner', 'a.jpg'));
  fs.symlinkSync(src, path.join(src, 'inner', 'loop'));
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(src, 'dangling.jpg'));
  const project = openProject(path.join(dir, 'p'), { create: true });
  const summary = await importPaths(project, [src]);
  assert.equal(summary.added, 1);
  assert.equal(summary.errors, 1);
  assert.match(summary.problems[0].reason, /broken link/);
  project.close();
});

test('an unreadable file is recorded as "permission denied"', { skip: process.platform === 'win32' && 'POSIX permissions' }, async () => {
  const dir = tempDir();
  fs.chmodSync(dir, 0o777);
  const src = path.join(dir, 'src');
  await writeImage(path.join(src, 'ok.jpg'));
  await writeImage(path.join(src, 'secret.jpg'), { seed: 9 });
  fs.chmodSync(src, 0o777);
  fs.chmodSync(path.join(src, 'secret.jpg'), 0o000);
  const projectDir = path.join(dir, 'p');
  // root reads any file, so the import runs as an unprivileged user where the tests run as root.
  const asUser = process.getuid?.() === 0 ? ['runuser', '-u', 'nobody', '--'] : [];
  const run = (args: string[]) => new Promise<string>((resolve) => {
    const child = spawn(asUser[0] ?? process.execPath, [...asUser.slice(1), ...(asUser.length ? [process.execPath] : []), CLI, ...args],
      { env: { ...process.env, HOME: dir } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', () => resolve(out));
  });
  await run(['init', projectDir]);
  const output = await run(['import', projectDir, src]);
  assert.match(output, /imported 1 images/);
  assert.match(output, /secret\.jpg: permission denied/);
});

test('an import killed with SIGKILL leaves a consistent project and the next run finishes it', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  const total = 1200;
  await Promise.all(Array.from({ length: total }, (_, i) => writeImage(path.join(src, `d${i % 10}`, `${i}.jpg`), { seed: i, width: 24, height: 24 })));
  const projectDir = path.join(dir, 'p');
  assert.equal(runCli(['init', projectDir]).code, 0);
  const child = spawn(process.execPath, [CLI, 'import', projectDir, src, '--json', '--labels-from-folders']);
  await new Promise<void>((resolve) => {
    let buffered = '';
    child.stdout.on('data', (data) => {
      buffered += data;
      const done = buffered.trim().split('\n').map((l) => JSON.parse(l)).some((e) => e.event === 'progress' && e.done > 300);
      if (done && child.kill('SIGKILL')) resolve();
    });
  });
  await new Promise((resolve) => child.once('exit', resolve));
  const project = openProject(projectDir);
  assert.equal(project.db.pragma('integrity_check', { simple: true }), 'ok');
  const images = count(project.db, 'SELECT COUNT(*) AS n FROM images');
  assert.ok(images > 0 && images < total, `killed part-way (had ${images})`);
  assert.equal(count(project.db, "SELECT COUNT(*) AS n FROM files WHERE status = 'imported'"), images);
  assert.equal(count(project.db, 'SELECT COUNT(*) AS n FROM labels'), images);
  const rest = await importPaths(project, [src], { labelsFromFolders: true });
  assert.equal(rest.added, total - images);
  assert.equal(count(project.db, 'SELECT COUNT(*) AS n FROM images'), total);
  project.close();
});

function bmp24(width: number, height: number, rgb: [number, number, number]): Buffer {
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + rowBytes * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.set([rgb[2], rgb[1], rgb[0]], 54 + y * rowBytes + x * 3);
  return out;
}

test('thumbnails: a small JPEG is kept as it is, a large image becomes a WebP of at most 128 px', async () => {
  const dir = tempDir();
  await writeImage(path.join(dir, 'src', 'small.jpg'), { width: 32, height: 32 });
  await writeImage(path.join(dir, 'src', 'large.jpg'), { width: 300, height: 200, seed: 5 });
  const project = openProject(path.join(dir, 'p'), { create: true });
  await importPaths(project, [path.join(dir, 'src')]);
  const thumb = (name: string) => (project.db.prepare('SELECT thumbnail FROM images WHERE path LIKE ?').get(`%${name}`) as { thumbnail: Buffer }).thumbnail;
  assert.deepEqual(thumb('small.jpg'), fs.readFileSync(path.join(dir, 'src', 'small.jpg')));
  assert.equal(thumbnailMimeType(thumb('small.jpg')), 'image/jpeg');
  const large = await sharp(thumb('large.jpg')).metadata();
  assert.deepEqual([large.format, large.width, large.height], ['webp', 128, 85]);
  assert.equal(thumbnailMimeType(thumb('large.jpg')), 'image/webp');
  project.close();
});

test('images are numbered in scan order whatever order their decodes finish in', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  // Large and small files interleaved, so decodes finish out of order.
  for (let i = 0; i < 40; i++) await writeImage(path.join(src, `${String(i).padStart(2, '0')}.jpg`), { seed: i, width: i % 2 ? 16 : 600, height: i % 2 ? 16 : 400 });
  const project = openProject(path.join(dir, 'p'), { create: true });
  await importPaths(project, [src]);
  const names = (project.db.prepare('SELECT path FROM images ORDER BY id').all() as { path: string }[]).map((r) => path.basename(r.path));
  assert.deepEqual(names, [...names].sort());
  project.close();
});
