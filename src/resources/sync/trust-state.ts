// What a sync keeps on local disk, beside state.ts's times, so that a push can be trusted:
//  - `restoring`: a restore is under way (the marker used to be a file inside the user's folder,
//    where a user's own file of that name changed persist's behaviour; it now lives here, keyed
//    by the sync's local and mirror paths);
//  - `sqlite`: per database path, the change token (sqlite.ts) taken before the snapshot that was
//    pushed, and the sha256 of that snapshot: the same token and hash mean the database is unchanged;
//  - `unreadable`: files a push could not read, with the size, mtime and ctime they had: left out
//    of later plans (reported, never a change) until they change;
//  - `pushStartedMs`: when the last push began reading files (the racily-clean threshold);
//  - `damaged`: stored files `persist verify` found missing or damaged (pushed again, "repair").
// A lost or damaged file only costs a re-check (a snapshot, a hash): never data.
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import { syncStatePath } from './state.js';

export interface StatStamp {
  size: number;
  mtimeMs: number;
  ctimeMs?: number;
}

export interface TrustState {
  restoring?: string;
  sqlite?: Record<string, { token: string; sha256: string }>;
  unreadable?: Record<string, StatStamp & { reason: string }>;
  pushStartedMs?: number;
  /** Stored files `persist verify` found missing or damaged: the next push uploads them again. */
  damaged?: string[];
}

export function trustStatePath(host: Host, sync: ResolvedSync): string {
  return syncStatePath(host, sync).replace(/\.json$/, '.trust.json');
}

export async function readTrustState(host: Host, sync: ResolvedSync): Promise<TrustState> {
  const path = trustStatePath(host, sync);
  if (!(await host.stat(path))) return {};
  try {
    const data = JSON.parse((await host.readFile(path)).toString('utf8')) as TrustState;
    return typeof data === 'object' && data !== null ? data : {};
  } catch {
    return {};
  }
}

export async function writeTrustState(host: Host, sync: ResolvedSync, state: TrustState): Promise<void> {
  const path = trustStatePath(host, sync);
  await host.mkdir(join(path, '..'), { mode: 0o700 });
  await host.writeFileAtomic(path, `${JSON.stringify(state)}\n`, { mode: 0o600 });
}

export async function updateTrustState(host: Host, sync: ResolvedSync, change: (state: TrustState) => void): Promise<void> {
  const state = await readTrustState(host, sync);
  change(state);
  await writeTrustState(host, sync, state);
}

export function sameStamp(a: StatStamp, b: StatStamp): boolean {
  return a.size === b.size && Math.abs(a.mtimeMs - b.mtimeMs) < 1 && (a.ctimeMs === undefined || b.ctimeMs === undefined || Math.abs(a.ctimeMs - b.ctimeMs) < 1);
}
