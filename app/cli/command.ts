import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../contract/errors.ts';

/** A flag as `parseArgs` takes it, with the line `--help` prints for it. */
export type OptionSpec = Record<string, NonNullable<ParseArgsConfig['options']>[string] & { help?: string }>;

export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stderr is a terminal, so progress bars can redraw in place. */
  tty: boolean;
  /** True when stdout is a terminal, so `contrast invite` draws its link's QR code there. */
  outTty?: boolean;
}

export interface Invocation {
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  io: CliIO;
}

export interface Command {
  name: string;
  /**
   * Positional part of the usage line, e.g. "<project> <path...>", which also sets how many arguments
   * the command takes: one per `<name>`, any number more after `<name...>`, one more per `[name]`.
   */
  args: string;
  summary: string;
  options: OptionSpec;
  /** Only where the usage line cannot say it, e.g. alternatives with different counts. */
  maxArgs?: number;
  run(call: Invocation): Promise<number | void>;
}

export function parseInvocation(command: Command, argv: string[], io: CliIO): Invocation {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: command.options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UserError(`${(error as Error).message.split('\n')[0]}\n${usageLine(command)}`, 'usage');
  }
  const count = parsed.positionals.length;
  const { min, max } = argumentCount(command);
  if (count < min || count > max) {
    throw new UserError(`wrong number of arguments\n${usageLine(command)}`, 'usage');
  }
  return { positionals: parsed.positionals, values: parsed.values, io };
}

function argumentCount(command: Command): { min: number; max: number } {
  const required = command.args.replace(/\[[^\]]*\]/g, '').match(/<[^>]+>/g) ?? [];
  const optional = command.args.match(/\[[^\]]*\]/g) ?? [];
  const max = required.some((name) => name.endsWith('...>')) ? Infinity : required.length + optional.length;
  return { min: required.length, max: command.maxArgs ?? max };
}

export function usageLine(command: Command): string {
  return `usage: contrast ${command.name} ${command.args}`.trimEnd() + (Object.keys(command.options).length ? ' [options]' : '');
}

export function commandHelp(command: Command): string {
  const lines = [usageLine(command), '', command.summary, ''];
  for (const [name, spec] of Object.entries(command.options)) {
    const flag = `--${name}${spec.type === 'string' ? ' <value>' : ''}`;
    lines.push(`  ${flag.padEnd(24)} ${spec.help ?? ''}`.trimEnd());
  }
  return lines.join('\n');
}

/** Reads a numeric option, failing with a clear message when it isn't a number in range. */
export function numberOption(call: Invocation, name: string, fallback: number, min = -Infinity, max = Infinity): number {
  const raw = call.values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new UserError(`--${name} must be a number between ${min} and ${max}, got "${raw}"`, 'usage');
  }
  return value;
}

export function stringOption(call: Invocation, name: string): string | undefined {
  const raw = call.values[name];
  return typeof raw === 'string' ? raw : undefined;
}

export function printJson(io: CliIO, value: unknown): void {
  io.out(JSON.stringify(value) + '\n');
}

/**
 * One command's project, opened and always closed. A command killed half-way (Ctrl-C, SIGKILL)
 * leaves its lock to a dead process, which the next open notices and takes over.
 */
export { withProject } from '../services/projects.ts';
