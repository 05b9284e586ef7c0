/**
 * Reading weight files without PyTorch: the committed fixtures of test/fixtures/weights (made by
 * its make_fixtures.py with PyTorch 1.13) go through the zip reader, the strict unpickler and the
 * safetensors reader, and a tiny torchvision ResNet-18 imported from them computes PyTorch's
 * features. Refusals: a pickle that would run a command, a network that is not a ResNet, keys
 * that are missing, unknown or misshapen, a network other than the one asked for, a cut file.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../app/contract/errors.ts';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { buildPretrainModel, runPretrainModel } from '../../app/engine/simclr/model.ts';
import { loadRunModel } from '../../app/engine/stages/stage_common.ts';
import { openCheckpoint } from '../../app/engine/weights/checkpoint_file.ts';
import { importNetwork } from '../../app/engine/weights/import_network.ts';
import { unpickle, type PickleRules } from '../../app/engine/weights/pickle.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { listRuns } from '../../app/store/runs.ts';
import { tempDir } from '../helpers.ts';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/weights');
const fixture = (name: string) => path.join(FIXTURES, name);
const EVIL_MARKER = '/tmp/contrast-studio-evil-pickle-ran';

before(async () => {
  await initBackend('wasm');
});

function newProject(): Project {
  return openProject(path.join(tempDir('contrast-weights-'), 'project'), { create: true });
}

function tensorsOf(file: string): Map<string, { shape: number[]; values: Float32Array }> {
  const checkpoint = openCheckpoint(file);
  try {
    return new Map([...checkpoint.tensors].map(([name, t]) => [name, { shape: t.shape, values: t.read() }]));
  } finally {
    checkpoint.close();
  }
}

async function refusal(work: () => Promise<unknown>): Promise<UserError> {
  try {
    await work();
  } catch (error) {
    assert.ok(error instanceof UserError, `expected a UserError, got ${(error as Error).stack}`);
    return error;
  }
  assert.fail('expected the import to be refused');
}

/** The documented safetensors layout, written here to make damaged variants of a fixture. */
function writeSafetensors(file: string, tensors: Map<string, { shape: number[]; values: Float32Array }>): void {
  const header: Record<string, unknown> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, { shape, values }] of tensors) {
    const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([length, json, ...chunks]));
}

test('a .pth holding strided, offset, float16, bfloat16, float64 and int64 tensors, a Parameter and nested dicts reads back exactly', () => {
  const expected = JSON.parse(fs.readFileSync(fixture('tensor_kinds.json'), 'utf8')) as Record<string, { shape: number[]; values: number[] }>;
  const read = tensorsOf(fixture('tensor_kinds.pth'));
  assert.deepEqual([...read.keys()].sort(), Object.keys(expected).sort());
  for (const [name, { shape, values }] of Object.entries(expected)) {
    assert.deepEqual(read.get(name)!.shape, shape, name);
    // Every stored value is exact in float32 (float64 ones after rounding, as the import keeps them).
    assert.deepEqual(Array.from(read.get(name)!.values), values.map((v) => Math.fround(v)), name);
  }
});

test('the same ResNet saved by torch.save and as .safetensors reads to identical tensors', () => {
  const pth = tensorsOf(fixture('tiny_resnet18.pth'));
  const safetensors = tensorsOf(fixture('tiny_resnet18.safetensors'));
  assert.equal(pth.size, 122);
  assert.deepEqual([...safetensors.keys()].sort(), [...pth.keys()].sort());
  for (const [name, tensor] of pth) {
    assert.deepEqual(safetensors.get(name)!.shape, tensor.shape, name);
    assert.deepEqual(safetensors.get(name)!.values, tensor.values, name);
  }
  assert.deepEqual(pth.get('conv1.weight')!.shape, [4, 3, 7, 7]);
});

/** The pattern images make_fixtures.py computed PyTorch's features on: value (x·7 + y·13 + c·29 + n·31) mod 256. */
function patternImages(count: number, size: number): tf.Tensor4D {
  const values = new Float32Array(count * size * size * 3);
  let i = 0;
  for (let n = 0; n < count; n++) for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) values[i++] = ((x * 7 + y * 13 + c * 29 + n * 31) % 256) / 255;
  return tf.tensor4d(values, [count, size, size, 3]);
}

for (const file of ['tiny_resnet18.pth', 'tiny_resnet18.safetensors']) {
  test(`a torchvision ResNet-18 imported from ${file} computes PyTorch's features at 35 px, where TF's 'same' max-pool would pad 18x18 maps unevenly`, async (t) => {
    const reference = JSON.parse(fs.readFileSync(fixture('tiny_resnet18.json'), 'utf8')) as { size: number; features: number[][] };
    const project = newProject();
    try {
      const imported = await importNetwork(project, { file: fixture(file), imageSize: reference.size });
      assert.deepEqual(imported.model, {
        depth: 18, width: 0.0625, sk: false, stem: 'standard', imageSize: 35, padding: 'torch',
        inputNormalization: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      });
      assert.equal(imported.report.mapped, 100);
      assert.deepEqual(imported.report.ignored, { 'batch-norm step counters': 20, 'the ImageNet classifier (fine-tuning trains one for your classes)': 2 });
      const model = buildPretrainModel(imported.model);
      loadRunModel(project, imported.runId, model);
      const features = tf.tidy(() => runPretrainModel(model, patternImages(2, reference.size), false).features.arraySync());
      model.dispose();
      features.forEach((row, n) => {
        const scale = Math.max(...reference.features[n].map(Math.abs));
        const worst = Math.max(...row.map((v, j) => Math.abs(v - reference.features[n][j])));
        t.diagnostic(`image ${n}: largest difference ${worst.toExponential(2)}, relative ${(worst / scale).toExponential(2)}`);
        assert.ok(worst / scale < 1e-5, `image ${n}: largest difference ${worst} of ${scale} (relative ${worst / scale})`);
      });
      const run = listRuns(project.db).find((r) => r.id === imported.runId)!;
      assert.equal(run.kind, 'pretrain');
      assert.equal(run.status, 'done');
      const source = (run.summary as { imported: { file: string; sha256: string; bytes: number; layout: string } }).imported;
      assert.equal(source.file, file);
      assert.equal(source.layout, 'torchvision');
      assert.equal(source.bytes, fs.statSync(fixture(file)).size);
      assert.match(source.sha256, /^[0-9a-f]{64}$/);
    } finally {
      project.close();
    }
  });
}

test("a pickle that would run a command (os.system via __reduce__) is refused, naming it, and nothing runs", async () => {
  fs.rmSync(EVIL_MARKER, { force: true });
  const project = newProject();
  try {
    const error = await refusal(() => importNetwork(project, { file: fixture('evil.pth') }));
    assert.equal(error.code, 'unsafe_pickle');
    assert.match(error.message, /asks for posix\.system/);
    assert.equal(error.values.found, 'posix.system');
    assert.equal(fs.existsSync(EVIL_MARKER), false);
    assert.equal(listRuns(project.db).length, 0, 'a refused file leaves no run');
  } finally {
    project.close();
  }
});

test('the unpickler refuses instructions state dicts never use (INST) and calls of globals the rules do not allow', () => {
  const rules: PickleRules = {
    global: (module, name) => ({ kind: 'global', name: `${module}.${name}` }),
    persistentLoad: () => null,
  };
  // (cos\nsystem\nX… i: protocol 0's INST, which would call os.system('id').
  const inst = Buffer.concat([Buffer.from('(X\x02\x00\x00\x00id', 'latin1'), Buffer.from('ios\nsystem\n.', 'latin1')]);
  assert.throws(() => unpickle(inst, rules), (error: UserError) => error.code === 'unsafe_pickle' && /INST instruction/.test(error.message));
  // GLOBAL builtins.eval, then REDUCE with ('1+1',): the rules name it but give it no call.
  const reduce = Buffer.from('\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.', 'latin1');
  assert.throws(() => unpickle(reduce, rules), (error: UserError) => error.code === 'unsafe_pickle' && /calls builtins\.eval/.test(error.message));
});

test('a network that is not a ResNet is refused with what the file holds', async () => {
  const project = newProject();
  try {
    const error = await refusal(() => importNetwork(project, { file: fixture('not_resnet.pth') }));
    assert.equal(error.code, 'weights_not_resnet');
    assert.match(error.message, /found 11 tensors: features\.0\.weight \[8, 3, 3, 3\], features\.0\.bias \[8\]/);
    assert.match(error.message, /torchvision ResNet \(conv1\.weight \+ layer1\.0\.conv1\.weight\)/);
  } finally {
    project.close();
  }
});

test('missing, unknown and misshapen keys are listed together in one refusal', async () => {
  const tensors = tensorsOf(fixture('tiny_resnet18.pth'));
  tensors.delete('layer4.1.bn2.running_var');
  tensors.delete('layer2.0.downsample.0.weight');
  tensors.set('layer4.1.extra.weight', { shape: [2], values: new Float32Array(2) });
  tensors.set('layer1.0.conv2.weight', { shape: [4, 4, 1, 1], values: new Float32Array(16) });
  const file = path.join(tempDir(), 'damaged.safetensors');
  writeSafetensors(file, tensors);
  const project = newProject();
  try {
    const error = await refusal(() => importNetwork(project, { file, imageSize: 32 }));
    assert.equal(error.code, 'weights_keys');
    assert.deepEqual(error.values.missing, ['layer2.0.downsample.0.weight', 'layer4.1.bn2.running_var']);
    assert.deepEqual(error.values.unknown, ['layer4.1.extra.weight']);
    assert.deepEqual(error.values.misshapen, ['layer1.0.conv2.weight is [4, 4, 1, 1], needs [4, 4, 3, 3]']);
    assert.match(error.message, /do not fit a ResNet-18 ×0\.0625, 32 px, ImageNet mean\/std input in the layout of a torchvision ResNet: 2 missing \(layer2\.0\.downsample\.0\.weight, layer4\.1\.bn2\.running_var\); 1 unknown/);
  } finally {
    project.close();
  }
});

test('--arch is a promise the file must keep; a cut file is called damaged', async () => {
  const project = newProject();
  try {
    const wrong = await refusal(() => importNetwork(project, { file: fixture('tiny_resnet18.pth'), depth: 50 }));
    assert.equal(wrong.code, 'weights_wrong_network');
    assert.match(wrong.message, /ResNet-18\), not the ResNet-50 asked for/);
    const cut = path.join(tempDir(), 'cut.pth');
    fs.writeFileSync(cut, fs.readFileSync(fixture('tiny_resnet18.pth')).subarray(0, 200_000));
    const damaged = await refusal(() => importNetwork(project, { file: cut }));
    assert.equal(damaged.code, 'weights_damaged');
    assert.match(damaged.message, /not a complete zip file/);
  } finally {
    project.close();
  }
});
