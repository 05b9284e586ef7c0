/**
 * PyTorch checkpoints (`torch.save`, 1.6 and later): a zip holding `<name>/data.pkl`, the pickled
 * object, and `<name>/data/<key>`, one raw storage per key. The pickle refers to storages by
 * persistent id and rebuilds tensors with torch._utils._rebuild_tensor_v2(storage, offset, size,
 * stride, ...). Those calls, OrderedDict and the storage types are the only globals allowed here;
 * nested dicts of tensors are flattened into dotted names ("resnet.net.0.0.weight").
 */
import { UserError } from '../../contract/errors.ts';
import type { ByteReader } from './byte_reader.ts';
import { refusal, unpickle, type PickleGlobal, type PickleRules } from './pickle.ts';
import { DTYPE_BYTES, decodeElements, elementCount, type SourceDtype, type SourceTensor } from './source_tensors.ts';
import { ZipArchive, type ZipEntry } from './zip.ts';

const STORAGE_DTYPES: Record<string, SourceDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

interface StorageRef {
  entry: ZipEntry;
  dtype: SourceDtype;
}

/** A tensor as the pickle describes it: a strided view of a storage. */
class TorchTensor implements SourceTensor {
  constructor(
    private readonly archive: ZipArchive,
    private readonly storage: StorageRef,
    private readonly offset: number,
    readonly shape: number[],
    private readonly strides: number[],
  ) {}

  get dtype(): SourceDtype {
    return this.storage.dtype;
  }

  read(): Float32Array {
    const count = elementCount(this.shape);
    if (count === 0) return new Float32Array(0);
    // The span of storage elements the view touches, read once, then gathered in row-major order.
    const span = this.shape.reduce((last, n, i) => last + (n - 1) * this.strides[i], 0) + 1;
    const size = DTYPE_BYTES[this.dtype];
    const raw = decodeElements(this.archive.readRange(this.storage.entry, this.offset * size, span * size), this.dtype, span);
    if (isContiguous(this.shape, this.strides)) return raw;
    const out = new Float32Array(count);
    const index = new Array(this.shape.length).fill(0);
    for (let i = 0; i < count; i++) {
      out[i] = raw[index.reduce((at, k, d) => at + k * this.strides[d], 0)];
      for (let d = this.shape.length - 1; d >= 0 && ++index[d] === this.shape[d]; d--) index[d] = 0;
    }
    return out;
  }
}

function isContiguous(shape: number[], strides: number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

function numbers(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new UserError(`the checkpoint's pickle describes a tensor with a bad ${what}`, 'weights_damaged');
  }
  return value as number[];
}

function rules(archive: ZipArchive, root: string): PickleRules {
  const allowed = (name: string, call?: (args: unknown[]) => unknown): PickleGlobal => ({ kind: 'global', name, call });
  return {
    global(module, name) {
      const full = `${module}.${name}`;
      if (full === 'collections.OrderedDict') return allowed(full, (args) => new Map(Array.isArray(args[0]) ? (args[0] as [unknown, unknown][]) : []));
      if (full === 'torch._utils._rebuild_tensor_v2') {
        return allowed(full, ([storage, offset, size, stride]) => {
          if (!(storage as StorageRef | undefined)?.entry) throw refusal('the pickle rebuilds a tensor from something that is not a storage', full);
          const shape = numbers(size, 'size');
          return new TorchTensor(archive, storage as StorageRef, numbers([offset], 'offset')[0], shape, numbers(stride, 'stride'));
        });
      }
      if (full === 'torch._utils._rebuild_parameter') return allowed(full, ([tensor]) => tensor);
      if (module === 'torch' && name in STORAGE_DTYPES) return allowed(full);
      throw refusal(`the checkpoint's pickle asks for ${full}`, full);
    },
    persistentLoad(id) {
      const [kind, type, key] = Array.isArray(id) ? id : [];
      const dtype = STORAGE_DTYPES[(type as PickleGlobal | undefined)?.name?.replace(/^torch\./, '') ?? ''];
      if (kind !== 'storage' || !dtype || typeof key !== 'string') throw refusal('the checkpoint\'s pickle refers to an object that is not a tensor storage', String(kind));
      const entry = archive.entries.get(`${root}data/${key}`);
      if (!entry) throw new UserError(`the checkpoint has no storage ${key}: the file is incomplete`, 'weights_damaged');
      return { entry, dtype } satisfies StorageRef;
    },
  };
}

/** Every tensor in nested dicts, by dotted name; other values (epochs, hyper-parameters) are left out. */
function flatten(value: unknown, prefix: string, out: Map<string, SourceTensor>): void {
  if (value instanceof TorchTensor) out.set(prefix.slice(0, -1), value);
  else if (value instanceof Map) for (const [key, item] of value) flatten(item, `${prefix}${String(key)}.`, out);
}

export function readTorchCheckpoint(reader: ByteReader): Map<string, SourceTensor> {
  const archive = ZipArchive.open(reader);
  const pickles = [...archive.entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) throw new UserError(`${reader.file} is a zip file but not a PyTorch checkpoint (no <name>/data.pkl inside)`, 'weights_unsupported', { file: reader.file });
  const root = pickles[0].slice(0, -'data.pkl'.length);
  const byteOrder = archive.entries.has(`${root}byteorder`) ? archive.read(`${root}byteorder`).toString('utf8').trim() : 'little';
  if (byteOrder !== 'little') throw new UserError(`${reader.file} was saved on a ${byteOrder}-endian machine; only little-endian checkpoints are read`, 'weights_unsupported', { file: reader.file });
  const tensors = new Map<string, SourceTensor>();
  flatten(unpickle(archive.read(pickles[0]), rules(archive, root)), '', tensors);
  return tensors;
}
