import * as v from 'valibot';
import { UserError } from '../contract/errors.ts';
import { encodeQr } from '../contract/qr_code.ts';
import { guestNameSchema } from '../contract/operations.ts';
import { createHandlers } from '../services/handlers.ts';
import { Session } from '../services/session.ts';
import { inviteTeammate, revokeTeammate } from '../services/team.ts';
import { lanAddress } from '../transports/http/lan_address.ts';
import { ensureRendererBuilt } from '../transports/http/renderer_build.ts';
import { readServerAddress, startAtSavedAddress } from '../transports/http/server_address.ts';
import { numberOption, printJson, stringOption, withProject, type Command } from './command.ts';
import { qrForTerminal } from './terminal_qr.ts';

const serve: Command = {
  name: 'serve',
  args: '[project]',
  summary: 'Open the studio in a browser: serves the UI on 127.0.0.1 and prints its address.',
  options: {
    port: { type: 'string', help: 'port to listen on (default: the one used last time, else any free port)' },
    team: { type: 'boolean', help: 'share the project with teammates on the local network (they need a link from "contrast invite")' },
  },
  async run(call) {
    const port = numberOption(call, 'port', 0, 0, 65535);
    const team = Boolean(call.values.team);
    if (team && !call.positionals[0]) throw new UserError('--team shares one project: name it, e.g. contrast serve <project> --team', 'usage');
    const staticDir = await ensureRendererBuilt(call.io.err);
    const session = new Session();
    if (call.positionals[0]) session.open(call.positionals[0]);
    const { server, movedFrom } = await startAtSavedAddress(session.dataDir, { session, handlers: createHandlers(session), staticDir, port, team });
    if (movedFrom) call.io.out(`port ${movedFrom}, used last time, is taken, so the studio moved to port ${server.port}: tabs open at the old address must open the new one\n`);
    call.io.out(`Contrast Studio is running at ${server.openUrl}\n(open it in a browser; press Ctrl+C to stop)\n`);
    if (team) call.io.out(`Sharing with teammates at ${server.sharing.lanUrl}: give each a link from "contrast invite ${call.positionals[0]} --name NAME"\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await server.close();
    await session.dispose();
  },
};

const invite: Command = {
  name: 'invite',
  args: '<project>',
  summary: 'Make a personal link for a teammate to label the project from their browser, or revoke one.',
  options: {
    name: { type: 'string', help: "the teammate's name, recorded on every label they set" },
    revoke: { type: 'string', help: 'the name whose link stops working, at once' },
    json: { type: 'boolean', help: 'print the invitation as JSON' },
    qr: { type: 'boolean', help: 'draw the link as a QR code even when the output is not a terminal (it is drawn in a terminal anyway)' },
  },
  async run(call) {
    const [dir] = call.positionals;
    const revoke = stringOption(call, 'revoke');
    const name = stringOption(call, 'name');
    if ((revoke === undefined) === (name === undefined)) throw new UserError('give either --name NAME (a new link) or --revoke NAME', 'usage');
    const person = teammateName(revoke ?? name!);
    if (revoke !== undefined) {
      const revoked = await withProject(dir, (project) => revokeTeammate(project, person), true);
      if (call.values.json) return printJson(call.io, { name: person, revoked });
      call.io.out(revoked ? `revoked the link of ${person}: it stops working at once\n` : `${person} has no invitation to this project\n`);
      return;
    }
    const saved = readServerAddress(new Session().dataDir);
    if (!saved) throw new UserError(`the studio has not been served yet, so its port is unknown: start "contrast serve ${dir} --team" first`, 'not_serving');
    const invitation = await withProject(dir, (project) => inviteTeammate(project, person, `http://${lanAddress()}:${saved.port}/`), true);
    if (call.values.json) return printJson(call.io, invitation);
    call.io.out(`Link for ${person} (works while "contrast serve ${dir} --team" runs):\n${invitation.url}\n`);
    if (call.io.outTty || call.values.qr) call.io.out(qrForTerminal(encodeQr(invitation.url), Boolean(call.io.outTty)));
    call.io.out(`Revoke it with: contrast invite ${dir} --revoke ${JSON.stringify(person)}\n`);
  },
};

function teammateName(raw: string): string {
  const parsed = v.safeParse(guestNameSchema, raw);
  if (!parsed.success) throw new UserError(`"${raw.slice(0, 60)}" cannot be a teammate's name: ${parsed.issues[0].message}`, 'usage');
  return parsed.output;
}

export const serveCommands: Command[] = [serve, invite];
