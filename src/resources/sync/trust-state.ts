// What a sync keeps on local disk, beside state.ts's times, so that a push can be trusted:
//  - `restoring`: a restore is under way (the marker used to be a file inside the user's folder,
//    where a user's own file of that name changed persist's behaviour; it now lives here, keyed
//    by the sync's local and mirror paths);
//  - `sqlite`: per database path, the change token (sqlite.ts) taken before the snapshot that was
//    pushed, and the sha256 of that snapshot: the same token and hash mean the database is unchanged;
//  - `unreadable`: files a push could not read, with the size, mtime and ctime they had: left out
//    of later plans (reported, never a change) until they change;
//  - `pushStartedMs`: when the last push began reading files (the racily-clean threshold);
//  - `damaged`: stored files `persist verify` found missing or damaged (pushed again, "repair"),
//    and the files listed by a manifest shard it found damaged in the store;
//  - `damagedManifest`: those shards (names such as `0-of-1.json`) and the paths that are in
//    `damaged` only because of them (their stored copies are fine: the push writes the shard
//    again, not the files).
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
  /** Manifest shards verify found damaged in the store, and the paths `damaged` holds only for them. */
  damagedManifest?: { shards: string[]; paths: string[] };
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

/**
 * After verify checked the stored manifest: the shards it found damaged (by name) and the paths
 * they list (taken from this machine's copy). Their paths join `damaged`, so that the next plan
 * shows `push (repair)`; the push writes the shards again (ManifestWriter, from the cache's mark).
 * An empty list clears what an earlier verify recorded.
 */
export async function recordManifestDamage(host: Host, sync: ResolvedSync, shards: readonly string[], paths: readonly string[]): Promise<void> {
  await updateTrustState(host, sync, (state) => {
    const before = new Set(state.damagedManifest?.paths ?? []);
    const files = (state.damaged ?? []).filter((path) => !before.has(path));
    delete state.damagedManifest;
    if (shards.length > 0) {
      const fileSet = new Set(files);
      const only = [...new Set(paths)].filter((path) => !fileSet.has(path)).sort();
      state.damagedManifest = { shards: [...shards].sort(), paths: only };
      files.push(...only);
    }
    if (files.length > 0) state.damaged = files;
    else delete state.damaged;
  });
}
