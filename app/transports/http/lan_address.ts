/**
 * The address teammates reach the studio at: the machine's first IPv4 address on a local network.
 * CONTRAST_TEAM_ADDRESS overrides it, so sharing can be tested on loopback (127.0.0.1) or pinned
 * to one network of several.
 */
import os from 'node:os';
import { UserError } from '../../contract/errors.ts';

export const TEAM_ADDRESS_ENV = 'CONTRAST_TEAM_ADDRESS';

export function lanAddress(): string {
  const pinned = process.env[TEAM_ADDRESS_ENV];
  if (pinned) return pinned;
  for (const addresses of Object.values(os.networkInterfaces())) {
    const found = addresses?.find((entry) => entry.family === 'IPv4' && !entry.internal);
    if (found) return found.address;
  }
  throw new UserError('this machine is on no local network, so teammates cannot reach it: connect to one, then share again', 'no_network');
}
