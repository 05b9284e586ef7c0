/**
 * Team labelling under load (npm run bench:team): 5 guests label at 2 labels/s each for 2 minutes
 * through `contrast serve --team` (shared on loopback) while a pretraining job runs in the same
 * project. Reports the latency of every label call and checks that every label landed once,
 * under its guest's name. A benchmark, not a test: it prints figures and asserts nothing timed.
 *
 *   npm run bench:team [-- --seconds 120 --guests 5 --rate 2]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { runCli } from '../helpers.ts';
import { serve, tempDir, writeClassImages } from '../e2e/helpers.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '120' }, guests: { type: 'string', default: '5' }, rate: { type: 'string', default: '2' } } });
const seconds = Number(values.seconds);
const guests = Number(values.guests);
const rate = Number(values.rate);
const expected = Math.ceil(seconds * rate) * guests;

const root = tempDir('team-bench');
const projectDir = path.join(root, 'project');
const env = { CONTRAST_HOME: path.join(root, 'home'), CONTRAST_TEAM_ADDRESS: '127.0.0.1' };
// Enough unlabelled images that the queue never runs dry, in two learnable colours.
await writeClassImages(path.join(root, 'images'), { red: [220, 40, 40], blue: [40, 40, 220] }, Math.ceil((expected * 1.2) / 2), 24);
check(runCli(['init', projectDir], { env }).code === 0, 'init failed');
const imported = runCli(['import', projectDir, path.join(root, 'images')], { env, timeout: 600_000 });
check(imported.code === 0, imported.stderr);

const served = await serve([projectDir, '--team'], env);
let socketRetries = 0;
/**
 * One call, tried again once when the kept-alive connection was closed under it (Node's client
 * can reuse a socket the server is just closing for idleness); labelling is idempotent, so a retry
 * never adds a label. Retries are counted in the report.
 */
const call = async (token: string, operation: string, input: unknown) => {
  try {
    return await callOnce(token, operation, input);
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw error;
    socketRetries++;
    return callOnce(token, operation, input);
  }
};
const callOnce = async (token: string, operation: string, input: unknown) => {
  const response = await fetch(`${served.origin}/api/${operation}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-contrast-token': token }, body: JSON.stringify(input) });
  const body = await response.json();
  if (!response.ok) throw new Error(`${operation}: HTTP ${response.status} ${JSON.stringify(body)}`);
  return body;
};
const { classId } = await call(served.token, 'classes.add', { name: 'red' });
// A labels-free pretraining with far more epochs than fit in the window keeps the CPU busy for the
// whole benchmark (a time budget let the quick preset finish early); it is cancelled at the end.
const { runId } = await call(served.token, 'train.start', { stage: 'pretrain', preset: 'quick', budgetMinutes: 1, advanced: { epochs: 10_000 } });
const names = Array.from({ length: guests }, (_, i) => `guest${i + 1}`);
const tokens = names.map((name) => JSON.parse(runCli(['invite', projectDir, '--name', name, '--json'], { env }).stdout).token as string);

const latencies: number[] = [];
const queueLatencies: number[] = [];
const sent = new Map<string, number[]>();
const started = performance.now();

/** One guest: fetch a batch from the queue, label one image every 1/rate s, on schedule whatever the replies take. */
async function labeller(name: string, token: string): Promise<void> {
  const mine: number[] = [];
  sent.set(name, mine);
  const total = Math.ceil(seconds * rate);
  let batch: number[] = [];
  const pending: Promise<void>[] = [];
  for (let index = 0; index < total; index++) {
    const due = started + (index * 1000) / rate;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
    if (batch.length === 0) {
      const at = performance.now();
      batch = (await call(token, 'queue.next', { limit: 10 })).items.map((item: { id: number }) => item.id);
      queueLatencies.push(performance.now() - at);
    }
    const imageId = batch.shift()!;
    mine.push(imageId);
    const at = performance.now();
    pending.push(call(token, 'labels.set', { imageIds: [imageId], classId }).then(() => void latencies.push(performance.now() - at)));
  }
  await Promise.all(pending);
}

await Promise.all(names.map((name, i) => labeller(name, tokens[i]))).catch((error) => {
  console.error(`the server said:\n${served.output()}`);
  throw error;
});
const wallSeconds = (performance.now() - started) / 1000;
const run = (await call(served.token, 'runs.get', { runId })).run;
await call(served.token, 'train.cancel', { runId }).catch(() => {});
await served.stop();

const db = new Database(path.join(projectDir, 'project.db'), { readonly: true });
const votes = db.prepare('SELECT image_id AS imageId, author FROM label_votes').all() as { imageId: number; author: string }[];
db.close();
const sentAll = [...sent.values()].flat();
const landedOnce = votes.length === sentAll.length && new Set(votes.map((v) => v.imageId)).size === votes.length;
const rightAuthors = votes.every((vote) => sent.get(vote.author)?.includes(vote.imageId));
const sorted = [...latencies].sort((a, b) => a - b);
const quantile = (q: number, list = sorted) => list[Math.min(list.length - 1, Math.floor(q * list.length))];
const queueSorted = [...queueLatencies].sort((a, b) => a - b);

console.log(
  JSON.stringify(
    {
      guests,
      labelsPerSecondEach: rate,
      seconds: Number(wallSeconds.toFixed(1)),
      labelsSent: sentAll.length,
      labelsStored: votes.length,
      distinctImages: new Set(sentAll).size,
      everyLabelLandedOnce: landedOnce,
      everyLabelHasItsAuthor: rightAuthors,
      trainingRunStatusAtEnd: run.status,
      socketRetries,
      labelLatencyMs: { p50: round(quantile(0.5)), p99: round(quantile(0.99)), max: round(sorted.at(-1)!) },
      queueLatencyMs: { p50: round(quantile(0.5, queueSorted)), p99: round(quantile(0.99, queueSorted)), max: round(queueSorted.at(-1)!) },
    },
    null,
    2,
  ),
);
fs.rmSync(root, { recursive: true, force: true });

function round(ms: number): number {
  return Number(ms.toFixed(1));
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(message);
}
