// Per-sync facts kept on local disk (never in the bucket): when this machine last restored and
// pushed. A restore therefore writes nothing into the mirror when the mirror has a manifest, and
// two containers restoring from one mirror never race on its manifest.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import { stateDir } from '../../host/paths.js';
import type { ResolvedSync } from '../../spec/types.js';

export interface SyncLocalState {
  lastPush?: string;
  lastRestore?: string;
}

/** `<state>/syncs/<name>-<hash of local and mirror paths>.json` */
export function syncStatePath(host: Host, sync: ResolvedSync): string {
  const id = createHash('sha256').update(`${sync.from}\0${sync.to}`).digest('hex').slice(0, 10);
  return join(stateDir(host.env()), 'syncs', `${sync.name}-${id}.json`);
}

export async function readSyncState(host: Host, sync: ResolvedSync): Promise<SyncLocalState> {
  const path = syncStatePath(host, sync);
  if (!(await host.stat(path))) return {};
  try {
    const data = JSON.parse((await host.readFile(path)).toString('utf8')) as Record<string, unknown>;
    const state: SyncLocalState = {};
    if (typeof data.lastPush === 'string') state.lastPush = data.lastPush;
    if (typeof data.lastRestore === 'string') state.lastRestore = data.lastRestore;
    return state;
  } catch {
    return {}; // a damaged state file only loses the times shown by status
  }
}

export async function recordSyncEvent(host: Host, sync: ResolvedSync, event: keyof SyncLocalState, at: Date): Promise<void> {
  const path = syncStatePath(host, sync);
  const state = { ...(await readSyncState(host, sync)), [event]: at.toISOString() };
  await host.mkdir(join(path, '..'), { mode: 0o700 });
  await host.writeFileAtomic(path, `${JSON.stringify(state)}\n`, { mode: 0o600 });
}
