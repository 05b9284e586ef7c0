/**
 * The services' one entry for front ends: every contract operation's handler, joined from one
 * typed set per domain at start-up. HTTP and Electron IPC dispatch into this; nothing else.
 */
import type { Input, OperationName, Output } from '../contract/operations.ts';
import type { Caller } from '../contract/team.ts';
import { exportHandlers } from './exports.ts';
import { predictHandlers } from './folder_predictions.ts';
import { imageHandlers } from './images.ts';
import { importHandlers } from './imports.ts';
import { labelHandlers } from './labels.ts';
import { pipelineHandlers } from './pipeline.ts';
import { projectHandlers } from './projects.ts';
import { resultHandlers } from './results.ts';
import type { Session } from './session.ts';
import { teamHandlers } from './team.ts';
import { trainingHandlers } from './training.ts';
import { tryItHandlers } from './try_it.ts';
import { weightsHandlers } from './weights.ts';

/** Each handler learns who calls it; most ignore it, as dispatch has already refused guests what is not theirs. */
export type Handlers = { [N in OperationName]: (input: Input<N>, caller: Caller) => Promise<Output<N>> };

export function createHandlers(session: Session): Handlers {
  return {
    ...projectHandlers(session),
    ...importHandlers(session),
    ...imageHandlers(session),
    ...labelHandlers(session),
    ...pipelineHandlers(session),
    ...trainingHandlers(session),
    ...resultHandlers(session),
    ...tryItHandlers(session),
    ...predictHandlers(session),
    ...exportHandlers(session),
    ...weightsHandlers(session),
    ...teamHandlers(session),
  };
}
