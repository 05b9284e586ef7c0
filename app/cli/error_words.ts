/**
 * The command line's words for errors that need advice: the services say what went wrong in
 * plain terms (code + values); only here does the advice name commands and flags.
 */
import type { UserError } from '../contract/errors.ts';
import { TRAIN_OPTIONS, type TrainOptionName } from '../contract/train_options.ts';

/** What to append to the message, separator included. */
const ADVICE: Record<string, (values: Record<string, unknown>) => string> = {
  no_project: (v) => ` (create one with: contrast init ${v.dir ?? '<dir>'})`,
  unknown_run: () => ' (list them with: contrast runs <project>)',
  no_data: () => '; import some first ("contrast import")',
  no_labels: () => ' ("contrast label")',
  no_parent: (v) => (v.needs === 'pretrain' ? ': run "contrast pretrain" first, or use --supervised' : ': fine-tune a model first ("contrast finetune")'),
  no_model: () => ': fine-tune a model first ("contrast finetune")',
};

/** The one line the CLI prints for a user error: the message, then the advice for this front end. */
export function cliMessage(error: UserError): string {
  const message = error.code === 'bad_setting' ? withFlagNames(error.message) : error.message;
  return message + (ADVICE[error.code]?.(error.values) ?? '');
}

/** Settings are named as flags on the command line: "batchSize must be …" reads "--batch must be …". */
function withFlagNames(message: string): string {
  return message.replace(/^(\w+)(?= must be| does not apply| is fixed)/, (name) => {
    const definition = TRAIN_OPTIONS[name as TrainOptionName];
    return definition ? `--${definition.flag}` : name;
  });
}
