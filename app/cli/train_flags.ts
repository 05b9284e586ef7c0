/** Command-line flags for training settings, all from their one definition in contract/train_options.ts. */
import { UserError } from '../contract/errors.ts';
import { TRAIN_OPTIONS, type BackendChoice, type OptionDefinition, type TrainOptionName } from '../contract/train_options.ts';
import { numberOption, stringOption, type Invocation, type OptionSpec } from './command.ts';

export function choice(call: Invocation, name: string, allowed: readonly string[]): string | undefined {
  const value = stringOption(call, name);
  if (value !== undefined && !allowed.includes(value)) throw new UserError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`, 'usage');
  return value;
}

/** The flags of these settings, named and explained as the definition says. */
export function trainFlags(names: readonly TrainOptionName[]): OptionSpec {
  const options: OptionSpec = {};
  for (const name of names) {
    const definition: OptionDefinition = TRAIN_OPTIONS[name];
    options[definition.flag] = { type: definition.type === 'boolean' ? 'boolean' : 'string', help: definition.help };
  }
  return options;
}

/** Reads these settings' flags as the record the services check: numbers in range, choices among theirs. */
export function trainFlagValues(call: Invocation, names: readonly TrainOptionName[]): Partial<Record<TrainOptionName, unknown>> {
  const record: Partial<Record<TrainOptionName, unknown>> = {};
  for (const name of names) {
    const definition: OptionDefinition = TRAIN_OPTIONS[name];
    const raw = call.values[definition.flag];
    if (raw === undefined) continue;
    record[name] = definition.type === 'boolean' ? Boolean(raw) : definition.type === 'choice' ? choice(call, definition.flag, definition.choices) : flagNumber(call, name, definition);
  }
  return record;
}

function flagNumber(call: Invocation, name: TrainOptionName, definition: Extract<OptionDefinition, { type: 'number' }>): number {
  const value = numberOption(call, definition.flag, 0, definition.min, definition.max);
  if (definition.integer && !Number.isInteger(value)) throw new UserError(`--${definition.flag} must be a whole number, got "${call.values[definition.flag]}"`, 'usage', { name });
  return value;
}

/** --backend, checked against the choices; undefined when not given. */
export function backendFlag(call: Invocation): BackendChoice | undefined {
  return trainFlagValues(call, ['backend']).backend as BackendChoice | undefined;
}
