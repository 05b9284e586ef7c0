/**
 * A strict reader for the pickles inside PyTorch checkpoints. A pickle is a small program: its
 * GLOBAL and REDUCE instructions can name and call any Python function (os.system included), which
 * is why loading an untrusted .pth in Python can run code. This reader runs nothing: it knows the
 * opcodes a state dict uses (containers, numbers, strings, memo, persistent ids) and asks `rules`
 * what each global means; a global, call or opcode outside them stops the read with its name.
 */
import { UserError } from '../../contract/errors.ts';

/** A name the pickle imported; `call` is set only for the few the rules allow to be applied. */
export interface PickleGlobal {
  readonly kind: 'global';
  readonly name: string;
  readonly call?: (args: unknown[]) => unknown;
}

export interface PickleRules {
  /** What `module.name` stands for; refuses (throws) anything not allowed. */
  global(module: string, name: string): PickleGlobal;
  /** The object a persistent id (a tensor storage in PyTorch) refers to. */
  persistentLoad(id: unknown): unknown;
}

/** Opcodes this reader does not accept, by name, so a refusal says what the file asked for. */
const REFUSED_OPCODES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
  0x50: 'PERSID', 0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING', 0x56: 'UNICODE', 0x67: 'GET',
  0x70: 'PUT', 0x8b: 'LONG4', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

const MARK = Symbol('mark');

export function refusal(message: string, found: string): UserError {
  return new UserError(`${message}; a weights file needs only tensors and plain containers, so it was refused and nothing in it was run`, 'unsafe_pickle', { found });
}

class Reader {
  pos = 0;
  constructor(private readonly bytes: Buffer) {}

  take(n: number): Buffer {
    if (this.pos + n > this.bytes.length) throw new UserError('the checkpoint\'s pickle ends early: the file is truncated or damaged', 'weights_damaged');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number { return this.take(1)[0]; }
  u16(): number { return this.take(2).readUInt16LE(0); }
  u32(): number { return this.take(4).readUInt32LE(0); }
  u64(): number { return Number(this.take(8).readBigUInt64LE(0)); }

  line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw new UserError('the checkpoint\'s pickle ends early: the file is truncated or damaged', 'weights_damaged');
    const text = this.bytes.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return text;
  }
}

/** A little-endian two's-complement integer of any length (LONG1). */
function longValue(bytes: Buffer): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

export function unpickle(bytes: Buffer, rules: PickleRules): unknown {
  const r = new Reader(bytes);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  const pop = () => {
    if (stack.length === 0 || stack.at(-1) === MARK) throw new UserError('the checkpoint\'s pickle is malformed (stack underflow)', 'weights_damaged');
    return stack.pop();
  };
  const popToMark = (): unknown[] => {
    const at = stack.lastIndexOf(MARK);
    if (at < 0) throw new UserError('the checkpoint\'s pickle is malformed (no mark)', 'weights_damaged');
    return stack.splice(at).slice(1);
  };
  const top = () => {
    if (stack.length === 0) throw new UserError('the checkpoint\'s pickle is malformed (empty stack)', 'weights_damaged');
    return stack[stack.length - 1];
  };
  const get = (index: number) => {
    if (!memo.has(index)) throw new UserError('the checkpoint\'s pickle is malformed (unknown memo entry)', 'weights_damaged');
    return memo.get(index);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) throw refusal('the pickle sets items on something that is not a dict', 'SETITEM');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const append = (target: unknown, items: unknown[]) => {
    if (!Array.isArray(target) || Object.isFrozen(target)) throw refusal('the pickle appends to something that is not a list', 'APPEND');
    target.push(...items);
  };

  for (;;) {
    const op = r.u8();
    switch (op) {
      case 0x80: r.u8(); break; // PROTO
      case 0x95: r.u64(); break; // FRAME: a length hint only
      case 0x2e: return pop(); // STOP
      case 0x28: stack.push(MARK); break;
      case 0x30: pop(); break; // POP
      case 0x31: popToMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4a: stack.push(r.take(4).readInt32LE(0)); break; // BININT
      case 0x4b: stack.push(r.u8()); break; // BININT1
      case 0x4d: stack.push(r.u16()); break; // BININT2
      case 0x8a: stack.push(longValue(r.take(r.u8()))); break; // LONG1
      case 0x47: stack.push(r.take(8).readDoubleBE(0)); break; // BINFLOAT
      case 0x58: stack.push(r.take(r.u32()).toString('utf8')); break; // BINUNICODE
      case 0x8c: stack.push(r.take(r.u8()).toString('utf8')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(r.take(r.u64()).toString('utf8')); break; // BINUNICODE8
      case 0x55: stack.push(r.take(r.u8()).toString('latin1')); break; // SHORT_BINSTRING
      case 0x54: stack.push(r.take(r.u32()).toString('latin1')); break; // BINSTRING
      case 0x43: stack.push(Buffer.from(r.take(r.u8()))); break; // SHORT_BINBYTES
      case 0x42: stack.push(Buffer.from(r.take(r.u32()))); break; // BINBYTES
      case 0x8e: stack.push(Buffer.from(r.take(r.u64()))); break; // BINBYTES8
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(tuple(popToMark())); break; // TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); stack.push(tuple([pop(), b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); stack.push(tuple([pop(), b, c])); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popToMark()); break; // LIST
      case 0x61: { const item = pop(); append(top(), [item]); break; } // APPEND
      case 0x65: { const items = popToMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const d = new Map(); setItems(d, popToMark()); stack.push(d); break; } // DICT
      case 0x73: { const value = pop(); const key = pop(); setItems(top(), [key, value]); break; } // SETITEM
      case 0x75: { const items = popToMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(r.u8(), top()); break; // BINPUT
      case 0x72: memo.set(r.u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(get(r.u8())); break; // BINGET
      case 0x6a: stack.push(get(r.u32())); break; // LONG_BINGET
      case 0x63: { const module = r.line(); stack.push(rules.global(module, r.line())); break; } // GLOBAL
      case 0x93: { const name = pop(); const module = pop(); stack.push(rules.global(String(module), String(name))); break; } // STACK_GLOBAL
      case 0x52: { const args = pop(); stack.push(reduce(pop(), args)); break; } // REDUCE
      case 0x62: { const state = pop(); build(top(), state); break; } // BUILD
      case 0x51: stack.push(rules.persistentLoad(pop())); break; // BINPERSID
      default: {
        const name = REFUSED_OPCODES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
        throw refusal(`the checkpoint's pickle uses the ${name} instruction (at byte ${r.pos - 1}), which state dicts do not use`, name);
      }
    }
  }
}

function reduce(callable: unknown, args: unknown): unknown {
  const target = callable as Partial<PickleGlobal> | null;
  if (target?.kind !== 'global' || !Array.isArray(args)) throw refusal('the pickle calls something that is not a global it may call', 'REDUCE');
  if (!target.call) throw refusal(`the pickle calls ${target.name}`, target.name!);
  return target.call(args);
}

/**
 * BUILD sets an object's state. State dicts are OrderedDicts whose state holds `_metadata`
 * (module versions), which the weights do not need; BUILD on anything else is refused.
 */
function build(target: unknown, state: unknown): void {
  if (!(target instanceof Map) || !(state instanceof Map || state === null)) throw refusal('the pickle sets the state of an object that is not a dict', 'BUILD');
}
