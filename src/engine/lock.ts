// The apply lock: a file created exclusively on local disk (never the bucket). A second apply
// waits up to --lock-timeout, then fails naming the holder. A lock left by a dead process is taken
// over: it is renamed aside (so that only one taker wins) and then recreated exclusively. Waiting
// and the deadline use the host's clock, so the in-memory host runs a timeout without waiting.
import { join } from 'node:path';
import { LockError } from '../errors.js';
import { removeDeadTemporaries } from '../host/state-leftovers.js';
import type { Host } from '../host/types.js';

export interface LockHolder {
  pid: number;
  startedAt: string;
  spec: string;
  environment: string;
  /** The persist command holding it (apply, watch, verify, ...); absent in a lock written before it was recorded. */
  command?: string;
}

async function readHolder(host: Host, path: string): Promise<LockHolder | null> {
  try {
    return JSON.parse((await host.readFile(path)).toString('utf8')) as LockHolder;
  } catch {
    return null; // vanished, or half-written by a process that died at that moment
  }
}

/** What apply says to do when the lock is held: its --lock-timeout waits. */
const APPLY_RETRY = 'wait for it to finish or pass --lock-timeout';

/**
 * Take the lock; resolves to its release function. `retry`: what the error tells to do when the
 * lock stays held past `timeoutMs` (commands without --lock-timeout say their own).
 */
export async function acquireLock(
  host: Host,
  dir: string,
  holder: Omit<LockHolder, 'pid' | 'startedAt'>,
  timeoutMs: number,
  retry = APPLY_RETRY,
): Promise<() => Promise<void>> {
  const path = join(dir, 'apply.lock');
  await host.mkdir(dir, { mode: 0o700 });
  const mine: LockHolder = { pid: host.pid(), startedAt: host.now().toISOString(), ...holder };
  const deadline = host.now().getTime() + timeoutMs;
  for (;;) {
    try {
      await host.writeFile(path, `${JSON.stringify(mine)}\n`, { exclusive: true, mode: 0o600 });
      // Holding the lock: what a killed run left half-written in the state folder can go.
      await removeDeadTemporaries(host, dir);
      return async () => {
        const current = await readHolder(host, path);
        if (current?.pid === mine.pid) await host.remove(path);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const current = await readHolder(host, path);
    if (current && !host.processAlive(current.pid)) {
      const aside = `${path}.stale-${mine.pid}`;
      try {
        await host.rename(path, aside);
        const taken = await readHolder(host, aside);
        // Another taker recreated the lock between our read and our rename: give it back.
        if (taken && taken.pid !== current.pid && host.processAlive(taken.pid)) await host.rename(aside, path);
        else await host.remove(aside);
      } catch {
        // Someone else moved it first; just try again.
      }
      continue;
    }
    if (host.now().getTime() >= deadline) {
      const who = current ? `pid ${current.pid} (started ${current.startedAt}, environment "${current.environment}")` : 'another process';
      const by = current?.command && current.command !== 'apply' ? `persist ${current.command}` : 'another apply';
      throw new LockError(`${by} holds the lock ${path}: ${who}; ${retry}`);
    }
    await host.sleep(Math.min(200, Math.max(10, deadline - host.now().getTime())));
  }
}
