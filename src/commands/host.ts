// How a command gets its host. A module of its own so that commands that only read a spec
// (validate, init, doctor) do not load the engine with it.
import { RealHost } from '../host/real.js';
import type { Host } from '../host/types.js';
import { debugHost, readOnlyHost } from '../host/wrappers.js';
import type { CommandIO } from './types.js';

/**
 * The one place a command's host is composed: the real host, read-only when the command must
 * change nothing (any write then throws), and under `--debug` logging every call to stderr
 * (outermost, so that a refused write is logged too).
 */
export function makeHost(io: Pick<CommandIO, 'debug' | 'err'>, options: { readOnly?: boolean } = {}): Host {
  let host: Host = new RealHost();
  if (options.readOnly) host = readOnlyHost(host);
  if (io.debug) host = debugHost(host, (line) => io.err(`persist debug: ${line}\n`));
  return host;
}
