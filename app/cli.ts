import { UserError } from './contract/errors.ts';
import { cliMessage } from './cli/error_words.ts';
import { commandHelp, parseInvocation, type CliIO, type Command } from './cli/command.ts';
import { projectCommands } from './cli/project_commands.ts';
import { doctorCommands } from './cli/doctor_command.ts';
import { benchCommands } from './cli/bench_commands.ts';
import { serveCommands } from './cli/serve_command.ts';
import { trainCommands } from './cli/train_commands.ts';
import { weightsCommands } from './cli/weights_commands.ts';

const commands: Command[] = [...projectCommands, ...doctorCommands, ...benchCommands, ...serveCommands, ...trainCommands, ...weightsCommands];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'Contrast Studio: an image classifier from a folder of mostly unlabelled images (SimCLRv2).',
    '',
    'usage: contrast <command> [arguments] [options]',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Run "contrast <command> --help" for the options of one command.',
  ].join('\n');
}

const processIO: CliIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  tty: Boolean(process.stderr.isTTY),
  outTty: Boolean(process.stdout.isTTY),
};

export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview() + '\n');
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(`contrast: unknown command "${name}"\n${overview()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(commandHelp(command) + '\n');
    return 0;
  }
  try {
    const code = await command.run(parseInvocation(command, rest, io));
    return code ?? 0;
  } catch (error) {
    if (error instanceof UserError) {
      io.err(`contrast ${name}: ${cliMessage(error)}\n`);
      return error.code === 'usage' || error.code === 'bad_setting' ? 2 : 1;
    }
    throw error;
  }
}
