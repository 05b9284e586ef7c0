import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { classAgreements, labellerStats, pairAgreements } from '../../app/services/agreement.ts';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import { insertImage } from '../../app/store/images.ts';
import { addClass } from '../../app/store/labels.ts';
import { exportLabelsCsv } from '../../app/store/labels_csv.ts';
import { migrations } from '../../app/store/migrations.ts';
import { openProject } from '../../app/store/project.ts';
import { castVotes, disagreements, resolveDisagreement, type SharedVote } from '../../app/store/votes.ts';
import { addInvitation, readInvitations, revokeInvitation } from '../../app/store/invitations.ts';
import type { Caller } from '../../app/contract/team.ts';
import { RateLimiter } from '../../app/transports/http/rate_limit.ts';
import { tempDir } from '../helpers.ts';

function addImages(db: Database.Database, count: number): number[] {
  return Array.from({ length: count }, (_, i) =>
    insertImage(db, { path: `/data/img${i}.jpg`, sha256: `sha-${i}`, size: 1, width: 1, height: 1, format: 'jpeg', thumbnail: Buffer.from([1]), batchId: null, testSet: false }, 'now'),
  );
}

/** Ana and Ben label images 1-10, Cy joins them on 1-4; classes 1 and 2. Final label: Ana's. */
function fixedVotes(): SharedVote[] {
  const ana = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2];
  const ben = [1, 1, 1, 1, 2, 2, 2, 2, 2, 1];
  const cy = [1, 1, 2, 2];
  const votes: SharedVote[] = [];
  ana.forEach((classId, i) => votes.push({ imageId: i + 1, author: 'ana', classId, finalClassId: ana[i] }));
  ben.forEach((classId, i) => votes.push({ imageId: i + 1, author: 'ben', classId, finalClassId: ana[i] }));
  cy.forEach((classId, i) => votes.push({ imageId: i + 1, author: 'cy', classId, finalClassId: ana[i] }));
  return votes;
}

test("Cohen's kappa per pair equals the hand-computed values", () => {
  // ana-ben: 8 of 10 agree; each used each class 5 times, so chance is 0.5 and κ = (0.8 - 0.5) / 0.5 = 0.6.
  // ana-cy and ben-cy on images 1-4: 2 of 4 agree; chance 1·0.5 = 0.5, so κ = 0.
  const pairs = pairAgreements(fixedVotes());
  assert.deepEqual(
    pairs.map((p) => [p.a, p.b, p.images, p.observed, Number(p.kappa!.toFixed(12))]),
    [
      ['ana', 'ben', 10, 0.8, 0.6],
      ['ana', 'cy', 4, 0.5, 0],
      ['ben', 'cy', 4, 0.5, 0],
    ],
  );
});

test('kappa is undefined, not a division by zero, when both labellers used one class only', () => {
  const votes: SharedVote[] = [1, 2].flatMap((imageId) => ['ana', 'ben'].map((author) => ({ imageId, author, classId: 3, finalClassId: 3 })));
  assert.deepEqual(pairAgreements(votes), [{ a: 'ana', b: 'ben', images: 2, observed: 1, kappa: null }]);
});

test('per-class specific agreement equals the hand-computed values', () => {
  // Pairs of votes per image: images 1-2 (1,1,1) give 3 (1,1) pairs each; images 3-4 (1,1,2) one (1,1) and two (1,2);
  // image 5 and 10 one (1,2); images 6-9 one (2,2). Class 1: 2·8 / 22; class 2: 2·4 / 14.
  assert.deepEqual(classAgreements(fixedVotes()), [
    { classId: 1, agreement: 16 / 22, votes: 12 },
    { classId: 2, agreement: 8 / 14, votes: 12 },
  ]);
});

test('labeller stats: count, labels per minute of labelling time, agreement with the final label', () => {
  const at = (seconds: number) => new Date(Date.UTC(2025, 0, 1) + seconds * 1000).toISOString();
  // Ana: 30 s, 30 s, a 19-minute break, 30 s: 3 labels in 1.5 minutes of labelling.
  const times = [0, 30, 60, 1200, 1230].map((s) => ({ author: 'ana', createdAt: at(s) }));
  times.push({ author: 'ben', createdAt: at(0) });
  const stats = labellerStats(times, fixedVotes());
  assert.deepEqual(stats, [
    { author: 'ana', labels: 5, perMinute: 2, agreementWithFinal: 1 },
    { author: 'ben', labels: 1, perMinute: 0, agreementWithFinal: 0.8 },
  ]);
});

test('the host decides at once, a guest labels what nobody labelled, and a different second vote waits for review keeping both votes', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  const { db } = project;
  const [a, b, c] = addImages(db, 3);
  const cat = addClass(db, 'cat');
  const dog = addClass(db, 'dog');
  const label = (imageId: number) => db.prepare('SELECT class_id AS classId, author FROM labels WHERE image_id = ?').get(imageId);

  castVotes(db, [{ imageId: a, classId: cat }], 'ana', 'human');
  assert.deepEqual(label(a), { classId: cat, author: 'ana' });
  castVotes(db, [{ imageId: a, classId: dog }], 'ben', 'human');
  assert.deepEqual(label(a), { classId: cat, author: 'ana' }, "the first voter's label stays until the host settles it");
  assert.deepEqual(disagreements(db, 10), [{ imageId: a, labelClassId: cat, votes: [{ author: 'ana', classId: cat }, { author: 'ben', classId: dog }] }]);

  resolveDisagreement(db, a, dog);
  assert.deepEqual(label(a), { classId: dog, author: 'host' });
  assert.deepEqual(disagreements(db, 10), []);
  assert.equal(db.prepare('SELECT COUNT(*) FROM label_votes WHERE image_id = ?').pluck().get(a), 2, 'both votes stay in its history');

  // A guest taking back their label hands the image to the next voter, or leaves it unlabelled.
  castVotes(db, [{ imageId: b, classId: cat }], 'ana', 'human');
  castVotes(db, [{ imageId: b, classId: cat }], 'ben', 'human');
  const undo = castVotes(db, [{ imageId: b, classId: null }], 'ana', 'human');
  assert.deepEqual(undo, [{ imageId: b, previousClassId: cat }]);
  assert.deepEqual(label(b), { classId: cat, author: 'ben' });

  castVotes(db, [{ imageId: c, classId: cat }], 'ana', 'human');
  castVotes(db, [{ imageId: c, classId: dog }], 'host', 'human');
  assert.deepEqual(label(c), { classId: dog, author: 'host' }, "the host's label is final at once");
  project.close();
});

test('the migration gives every existing label to the host, as a vote too', () => {
  const dir = path.join(tempDir(), 'p');
  openProject(dir, { create: true }).close();
  const raw = new Database(path.join(dir, 'project.db'));
  // Back to schema 2, as a project made before teams existed.
  raw.exec('DROP TABLE label_votes; DROP TABLE label_reviews;');
  raw.pragma('user_version = 2');
  const [image] = addImages(raw, 1);
  raw.prepare("INSERT INTO classes (name, created_at) VALUES ('cat', 'now')").run();
  raw.prepare("INSERT INTO labels (image_id, class_id, source, author, created_at) VALUES (?, 1, 'human', 'studio', '2024-01-01T00:00:00.000Z')").run(image);
  raw.close();

  const project = openProject(dir);
  assert.equal(project.db.pragma('user_version', { simple: true }), migrations.length);
  assert.equal(project.db.prepare('SELECT author FROM labels').pluck().get(), 'host');
  assert.deepEqual(project.db.prepare('SELECT image_id AS imageId, author, class_id AS classId FROM label_votes').all(), [{ imageId: image, author: 'host', classId: 1 }]);
  project.close();
});

test('invitations keep only a hash of the token; the host\'s own name cannot be taken', () => {
  const dir = tempDir();
  const token = addInvitation(dir, 'Ana');
  assert.match(token, /^[A-Za-z0-9_-]{32}$/);
  const stored = readInvitations(dir);
  assert.equal(stored.length, 1);
  assert.ok(!JSON.stringify(stored).includes(token));
  assert.notEqual(addInvitation(dir, 'ana'), token, 'inviting a name again replaces its link');
  assert.equal(readInvitations(dir).length, 1);
  assert.throws(() => addInvitation(dir, 'Host'), { code: 'bad_name' });
  assert.equal(revokeInvitation(dir, 'ANA'), true);
  assert.equal(revokeInvitation(dir, 'ana'), false);
});

test('guests are refused host operations, get no paths, and two at once are handed different images', async () => {
  const session = new Session({ dataDir: tempDir() });
  const project = session.open(path.join(tempDir(), 'p'), true);
  addImages(project.db, 30);
  const handlers = createHandlers(session);
  const ana: Caller = { role: 'guest', name: 'ana' };
  const ben: Caller = { role: 'guest', name: 'ben' };

  for (const [name, input] of [['import.start', { paths: ['/tmp'] }], ['train.start', { stage: 'finetune', preset: 'quick', budgetMinutes: 1 }], ['export.labels', { format: 'csv' }], ['projects.open', { dir: '/tmp' }], ['classes.delete', { classId: 1 }], ['team.invite', { name: 'eve' }]] as const) {
    const refused = await dispatch(handlers, name, input, ana);
    assert.equal(refused.status, 403, name);
    assert.equal('error' in refused && refused.error.code, 'forbidden');
  }
  const status = await dispatch(handlers, 'project.status', {}, ana);
  assert.equal(status.status, 200);
  assert.equal((status as { value: { project: { dir: string } } }).value.project.dir, 'p');
  const detail = await dispatch(handlers, 'images.get', { imageId: 1 }, ana);
  assert.equal((detail as { value: { path: string | null } }).value.path, null);

  const [first, second] = await Promise.all([handlers['queue.next']({ limit: 12 }, ana), handlers['queue.next']({ limit: 12 }, ben)]);
  const anaIds = first.items.map((item) => item.id);
  const benIds = second.items.map((item) => item.id);
  assert.equal(anaIds.length, 12);
  assert.equal(benIds.length, 12);
  assert.deepEqual(anaIds.filter((id) => benIds.includes(id)), []);
  // Asking again keeps one's own images and still avoids the other's.
  const again = await handlers['queue.next']({ limit: 30 }, ana);
  assert.deepEqual(again.items.map((item) => item.id).filter((id) => benIds.includes(id)), []);

  const cat = (await handlers['classes.add']({ name: 'cat' }, { role: 'host' })).classId;
  await handlers['labels.set']({ imageIds: [anaIds[0]], classId: cat }, ana);
  await assert.rejects(handlers['labels.restore']({ changes: [{ imageId: anaIds[0], classId: null }] }, ben), { code: 'forbidden' });
  await handlers['labels.restore']({ changes: [{ imageId: anaIds[0], classId: null }] }, ana);
  assert.equal(project.db.prepare('SELECT COUNT(*) FROM labels').pluck().get(), 0);
  await session.dispose();
});

test('the queue hands out its kept ranking in order, skips what was labelled, and ranks again when a label is taken back', async () => {
  const session = new Session({ dataDir: tempDir() });
  const project = session.open(path.join(tempDir(), 'p'), true);
  addImages(project.db, 30);
  const handlers = createHandlers(session);
  const host: Caller = { role: 'host' };
  const cat = (await handlers['classes.add']({ name: 'cat' }, host)).classId;
  const ids = async (limit: number) => (await handlers['queue.next']({ limit }, host)).items.map((item) => item.id);

  const first = await ids(5);
  await handlers['labels.set']({ imageIds: [first[0]], classId: cat }, host);
  const second = await ids(5);
  assert.deepEqual(second.slice(0, 4), first.slice(1), 'the rest of the ranking, in its order');
  assert.ok(!second.includes(first[0]), 'a labelled image is never handed out');
  // A batch larger than the images left ranks again and hands out every unlabelled image, once each.
  assert.equal(new Set(await ids(40)).size, 29);

  await handlers['labels.set']({ imageIds: [first[0]], classId: null }, host);
  assert.deepEqual(await ids(5), first, 'taken back, the image is ranked as before');
  await session.dispose();
});

test('the per-link rate limit allows a burst, then its rate, and keeps links apart', () => {
  const limiter = new RateLimiter(3, 2);
  const at = 1_000_000;
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('ana', at)), [true, true, true, false]);
  assert.equal(limiter.take('ben', at), true, "one link's burst does not slow another");
  assert.equal(limiter.take('ana', at + 499), false);
  assert.equal(limiter.take('ana', at + 500), true, 'half a second at 2/s earns one call');
});

test('the labels CSV carries an author column on request', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  const [a, b] = addImages(project.db, 2);
  const cat = addClass(project.db, 'cat');
  castVotes(project.db, [{ imageId: a, classId: cat }], 'Ana', 'human');
  castVotes(project.db, [{ imageId: b, classId: cat }], 'host', 'human');
  const out = tempDir();
  const lines = fs.readFileSync(exportLabelsCsv(project.db, out, true), 'utf8').trim().split('\n');
  assert.deepEqual(lines, ['path,class,source,split,author', '/data/img0.jpg,cat,human,,Ana', '/data/img1.jpg,cat,human,,host']);
  assert.equal(fs.readFileSync(exportLabelsCsv(project.db, out), 'utf8').split('\n')[0], 'path,class,source,split');
  project.close();
});
