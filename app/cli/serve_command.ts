import { createHandlers } from '../services/handlers.ts';
import { Session } from '../services/session.ts';
import { ensureRendererBuilt } from '../transports/http/renderer_build.ts';
import { startAtSavedAddress } from '../transports/http/server_address.ts';
import { numberOption, type Command } from './command.ts';

const serve: Command = {
  name: 'serve',
  args: '[project]',
  summary: 'Open the studio in a browser: serves the UI on 127.0.0.1 and prints its address.',
  options: {
    port: { type: 'string', help: 'port to listen on (default: the one used last time, else any free port)' },
  },
  async run(call) {
    const port = numberOption(call, 'port', 0, 0, 65535);
    const staticDir = await ensureRendererBuilt(call.io.err);
    const session = new Session();
    if (call.positionals[0]) session.open(call.positionals[0]);
    const { server, movedFrom } = await startAtSavedAddress(session.dataDir, { session, handlers: createHandlers(session), staticDir, port });
    if (movedFrom) call.io.out(`port ${movedFrom}, used last time, is taken, so the studio moved to port ${server.port}: tabs open at the old address must open the new one\n`);
    call.io.out(`Contrast Studio is running at ${server.openUrl}\n(open it in a browser; press Ctrl+C to stop)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await server.close();
    await session.dispose();
  },
};

export const serveCommands: Command[] = [serve];
