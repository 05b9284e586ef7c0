/**
 * Label-efficiency study: what one-click Train buys in M minutes, beside the same network trained
 * on the labels alone for M minutes and the PyTorch SimCLRv2 reference pipeline at M minutes, on
 * the same files. Issue #10's protocol: per CIFAR-10 class (files sorted by name) the first 800
 * form the project, the first K of them are labelled (K = 80 for 10%, 8 for 1%), and the last
 * 200 are held out and scored. Each arm runs alone, one after the other.
 *
 *   npm run bench:labels -- --minutes 15 --labels 10% [--arms pipeline,labels,reference,reference-labels,reference-simclr]
 *                           [--labels-options="--width 0.25"] [--seed 1]
 *
 * `--labels-options` passes recipe settings to the labels-only arm's `finetune`, to study one change at a time.
 * `--seed` seeds our arms and the reference's arms run alone (test/bench/reference/one_arm.py), so
 * repeats show the spread: `reference-labels` is its labels-only network, its best arm at short budgets,
 * and `reference-simclr` its pretrain, fine-tune and distil stages. Each costs M minutes where
 * `reference`, both in one run with the reference's own seed, costs 2M.
 *
 * Appends one JSON line per arm to docs/study/results.jsonl and prints it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARCHIVE = path.resolve(ROOT, '../shared/datasets/cifar10-train.tar.gz');
const REFERENCE = path.resolve(ROOT, '../shared/reference/torch_simclr_pipeline.py');
const REFERENCE_ONE_ARM = path.join(ROOT, 'test/bench/reference/one_arm.py');
const RESULTS = path.join(ROOT, 'docs/study/results.jsonl');
const PROJECT_PER_CLASS = 800;
const HELD_OUT_PER_CLASS = 200;
/** The reference's stage split for a budget, as in the 15-minute run (8 + 3 + 4 minutes). */
const REFERENCE_SPLIT = { pretrain: 8 / 15, finetune: 3 / 15, distill: 4 / 15 };

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '15' }, labels: { type: 'string', default: '10%' }, arms: { type: 'string', default: 'pipeline,labels,reference' }, 'labels-options': { type: 'string', default: '' }, seed: { type: 'string', default: '1' } },
});
const minutes = Number(values.minutes);
const labelFraction = Number(values.labels!.replace('%', '')) / 100;
const labelledPerClass = Math.round(PROJECT_PER_CLASS * labelFraction);

function cifar(): string {
  const dir = path.join(os.tmpdir(), 'cifar');
  if (!fs.existsSync(path.join(dir, 'train'))) {
    fs.mkdirSync(dir, { recursive: true });
    run('tar', ['xzf', ARCHIVE, '-C', dir]);
  }
  return path.join(dir, 'train');
}

function run(command: string, args: string[]): { stdout: string; seconds: number } {
  const started = performance.now();
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status})`);
  return { stdout: result.stdout, seconds: (performance.now() - started) / 1000 };
}

const contrast = (...args: string[]) => run(process.execPath, [path.join(ROOT, 'bin/contrast.js'), ...args]);

/** Links the protocol's files into project/, heldout/ and a labels CSV. */
function layout(source: string, work: string): { projectImages: string; heldOut: string; labels: string } {
  const projectImages = path.join(work, 'project-images');
  const heldOut = path.join(work, 'heldout');
  const rows = ['path,class'];
  for (const name of fs.readdirSync(source).sort()) {
    const files = fs.readdirSync(path.join(source, name)).sort();
    for (const [dir, picked] of [[projectImages, files.slice(0, PROJECT_PER_CLASS)], [heldOut, files.slice(-HELD_OUT_PER_CLASS)]] as const) {
      fs.mkdirSync(path.join(dir, name), { recursive: true });
      for (const file of picked) fs.symlinkSync(path.join(source, name, file), path.join(dir, name, file));
    }
    for (const file of files.slice(0, labelledPerClass)) rows.push(`${path.join(projectImages, name, file)},${name}`);
  }
  const labels = path.join(work, 'labels.csv');
  fs.writeFileSync(labels, rows.join('\n') + '\n');
  return { projectImages, heldOut, labels };
}

function newProject(work: string, name: string, files: ReturnType<typeof layout>): string {
  const project = path.join(work, name);
  contrast('init', project);
  contrast('import', project, files.projectImages);
  contrast('label', project, '--csv', files.labels);
  return project;
}

/** Accuracy of the project's current model on the held-out images, read from `contrast predict`'s CSV. */
function heldOutAccuracy(project: string, heldOut: string): number {
  const csv = path.join(path.dirname(project), `${path.basename(project)}-heldout.csv`);
  contrast('predict', project, heldOut, '--out', csv);
  const rows = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1);
  const correct = rows.filter((row) => {
    const [file, predicted] = row.split(',');
    return path.basename(path.dirname(file)) === predicted;
  }).length;
  return correct / rows.length;
}

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!);
}

/** The CPU, since these machines differ between days (AVX-512 or not) and figures compare only on one. */
function cpu(): string {
  const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  return `${os.cpus()[0]?.model ?? 'unknown'}${/\bavx512f\b/.test(flags) ? ', AVX-512' : /\bavx2\b/.test(flags) ? ', AVX2' : ''}`;
}

function record(entry: Record<string, unknown>): void {
  // The budget fields come last: the reference reports its own per-stage `minutes`, kept as referenceMinutes.
  const { minutes: referenceMinutes, ...rest } = entry;
  const line = JSON.stringify({ date: new Date().toISOString(), ...rest, ...(referenceMinutes ? { referenceMinutes } : {}), minutes, labels: values.labels, seed: Number(values.seed), cpu: cpu(), cores: os.availableParallelism(), load: os.loadavg()[0] });
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.appendFileSync(RESULTS, line + '\n');
  console.log(line);
}

const ARMS = ['pipeline', 'labels', 'reference', 'reference-simclr', 'reference-labels'];
const arms = values.arms!.split(',');
const unknown = arms.filter((arm) => !ARMS.includes(arm));
if (unknown.length > 0) {
  console.error(`unknown arm ${unknown.join(', ')}: expected some of ${ARMS.join(', ')}`);
  process.exit(2);
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-labels-study-'));
const files = layout(cifar(), work);

if (arms.includes('pipeline')) {
  const project = newProject(work, 'pipeline', files);
  const trained = contrast('train', project, '--minutes', String(minutes), '--seed', values.seed!, '--json');
  const events = trained.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const plan = events.find((e) => e.event === 'plan');
  const runs = JSON.parse(contrast('runs', project, '--json').stdout) as { kind: string; summary: Record<string, unknown> | null }[];
  const pipeline = runs.find((r) => r.kind === 'pipeline')!;
  record({ arm: 'one-click Train', wallSeconds: trained.seconds, plan: plan?.text, choice: pipeline.summary?.choice, accuracy: heldOutAccuracy(project, files.heldOut) });
}

if (arms.includes('labels')) {
  const project = newProject(work, 'labels-only', files);
  const options = values['labels-options']!.split(' ').filter(Boolean);
  const trained = contrast('finetune', project, '--supervised', '--minutes', String(minutes), '--seed', values.seed!, ...options, '--json');
  record({ arm: 'labels only (finetune --supervised)', ...(options.length ? { options: options.join(' ') } : {}), wallSeconds: trained.seconds, summary: lastJson(trained.stdout).summary, accuracy: heldOutAccuracy(project, files.heldOut) });
}

const referenceSplit = Object.values(REFERENCE_SPLIT).map((share) => String(share * minutes));

if (arms.includes('reference')) {
  const reference = run('/usr/bin/python3', [REFERENCE, cifar(), String(labelledPerClass), ...referenceSplit]);
  record({ arm: 'PyTorch reference', wallSeconds: reference.seconds, ...lastJson(reference.stdout) });
}

if (arms.includes('reference-simclr')) {
  const reference = run('/usr/bin/python3', [REFERENCE_ONE_ARM, 'simclr', REFERENCE, cifar(), String(labelledPerClass), ...referenceSplit, values.seed!]);
  record({ arm: 'PyTorch reference, SimCLR stages', wallSeconds: reference.seconds, ...lastJson(reference.stdout) });
}

if (arms.includes('reference-labels')) {
  const reference = run('/usr/bin/python3', [REFERENCE_ONE_ARM, 'labels', REFERENCE, cifar(), String(labelledPerClass), String(minutes), values.seed!]);
  const { supervisedSteps, supervised, labelsPerClass, width } = lastJson(reference.stdout);
  record({ arm: 'PyTorch reference, labels only', wallSeconds: reference.seconds, labelsPerClass, width, supervisedSteps, supervised });
}
fs.rmSync(work, { recursive: true, force: true });
