// A parse cache for spec files. Parsing YAML is the largest part of a plan of a big spec (the
// parser runs cold in every process), so the data of a spec that parsed cleanly is kept as JSON
// under the sha256 of its exact bytes in persist's state folder: it can never be stale. Only an
// apply that has work writes it (plan, status and a no-op apply write nothing); any command that
// loads a spec reads it. Read synchronously through the Host (it is read at every start), written
// through it like any other state.
import { join } from 'node:path';
import type { Host } from '../host/types.js';

const FORMAT = 1;

function cacheFile(cacheDir: string, hash: string): string {
  return join(cacheDir, `${hash}.json`);
}

/** The cached data of the spec whose bytes hash to `hash`, or undefined (absent, unreadable, damaged). */
export function readCachedSpecData(host: Host, cacheDir: string, hash: string): unknown {
  try {
    const entry = JSON.parse(host.readFileNow(cacheFile(cacheDir, hash)).toString('utf8')) as { format?: unknown; hash?: unknown; data?: unknown };
    return entry.format === FORMAT && entry.hash === hash ? entry.data : undefined;
  } catch {
    return undefined;
  }
}

/** Store a cleanly parsed spec's data. Best effort: a cache that cannot be written only costs speed. */
export async function writeCachedSpecData(host: Host, cacheDir: string, hash: string, data: unknown): Promise<void> {
  try {
    await host.mkdir(cacheDir, { mode: 0o700 });
    const target = cacheFile(cacheDir, hash);
    const temporary = `${target}.${host.pid()}`;
    await host.writeFile(temporary, JSON.stringify({ format: FORMAT, hash, data }), { mode: 0o600 });
    await host.rename(temporary, target);
  } catch {
    // leave the cache as it was
  }
}
