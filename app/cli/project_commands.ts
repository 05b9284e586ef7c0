import { openProject } from '../store/project.ts';
import type { Command } from './command.ts';

const init: Command = {
  name: 'init',
  args: '<dir>',
  summary: 'Create a new project folder (project.db, checkpoints/, exports/).',
  options: {},
  minArgs: 1,
  maxArgs: 1,
  async run({ positionals, io }) {
    const project = openProject(positionals[0], { create: true });
    project.close();
    io.out(`created project at ${project.dir}\n`);
  },
};

export const projectCommands: Command[] = [init];
