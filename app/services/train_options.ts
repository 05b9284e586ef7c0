/**
 * Reads training settings from any front end (the studio's advanced record, the CLI's flags)
 * against the one definition in contract/train_options.ts: unknown names, settings that do not
 * apply to the stage, wrong types and values out of range are refused here, once.
 */
import type { Stage } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import {
  ARCHITECTURES,
  TRAIN_OPTIONS,
  describeRange,
  optionsForStage,
  type OptionDefinition,
  type TrainOptionName,
  type TrainOptions,
} from '../contract/train_options.ts';

export function parseTrainOptions(stage: Stage, record: Record<string, unknown>): TrainOptions {
  const options: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(record)) {
    if (raw === undefined) continue;
    const definition = definitionOf(name);
    if (!(definition.stages as readonly Stage[]).includes(stage)) {
      throw new UserError(`${name} does not apply to ${stage} (settable: ${optionsForStage(stage).join(', ')})`, 'bad_setting', { name, stage });
    }
    options[name] = name === 'depth' ? depthOf(raw) : checked(name as TrainOptionName, definition, raw);
  }
  if (options.epochs !== undefined && options.minutes !== undefined) throw new UserError('give either epochs or minutes, not both', 'bad_setting', { name: 'epochs' });
  return options as TrainOptions;
}

/** Settings that are not a stage's (a network to import or to train elsewhere), checked by the same rules. */
export function checkSettings(record: Partial<Record<TrainOptionName, unknown>>): Partial<TrainOptions> {
  const options: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(record)) {
    if (raw !== undefined) options[name] = name === 'depth' ? depthOf(raw) : checked(name as TrainOptionName, definitionOf(name), raw);
  }
  return options as Partial<TrainOptions>;
}

function definitionOf(name: string): OptionDefinition {
  if (!Object.hasOwn(TRAIN_OPTIONS, name)) {
    throw new UserError(`unknown training setting "${name}" (known: ${Object.keys(TRAIN_OPTIONS).join(', ')})`, 'bad_setting', { name });
  }
  return TRAIN_OPTIONS[name as TrainOptionName];
}

function checked(name: TrainOptionName, definition: OptionDefinition, raw: unknown): unknown {
  const refuse = (rule: string) => {
    throw new UserError(`${name} must be ${rule}, got ${JSON.stringify(raw)}`, 'bad_setting', { name, rule, got: raw });
  };
  if (definition.type === 'boolean') return typeof raw === 'boolean' ? raw : refuse('true or false');
  if (definition.type === 'choice') return typeof raw === 'string' && definition.choices.includes(raw) ? raw : refuse(`one of ${definition.choices.join(', ')}`);
  if (typeof raw !== 'number' || !Number.isFinite(raw)) return refuse('a number');
  const low = definition.exclusiveMin ? raw > definition.min : raw >= definition.min;
  if (!low || raw > definition.max || (definition.integer && !Number.isInteger(raw))) refuse(describeRange(definition));
  return raw;
}

function depthOf(raw: unknown): number {
  const byName = ARCHITECTURES[raw as keyof typeof ARCHITECTURES];
  if (byName) return byName;
  if (Object.values(ARCHITECTURES).includes(raw as 18)) return raw as number;
  throw new UserError(`depth must be one of ${Object.keys(ARCHITECTURES).join(', ')}, got ${JSON.stringify(raw)}`, 'bad_setting', { name: 'depth', got: raw });
}
