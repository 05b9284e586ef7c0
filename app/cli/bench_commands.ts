import type { Command } from './command.ts';

/** `contrast bench train` / `bench infer` are added once the engine's model exists. */
export const benchCommands: Command[] = [];
