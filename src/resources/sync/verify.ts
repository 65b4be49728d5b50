// `persist verify` for syncs: every file the manifest lists is checked in the store (size; with
// `hash`, content). What is missing or damaged is recorded in the sync's local trust state, so that
// the next plan pushes those files again (`push`, reason "repair") even though they did not change.
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import type { SyncManifest } from './manifest.js';
import { updateTrustState } from './trust-state.js';
import { storedKey } from './names.js';

export interface StoredProblem {
  path: string;
  problem: string;
}

export async function verifyMirror(store: Store, sync: ResolvedSync, manifest: SyncManifest, hash: boolean): Promise<{ checked: number; problems: StoredProblem[] }> {
  const problems: StoredProblem[] = [];
  const paths = Object.keys(manifest.files).sort();
  for (const path of paths) {
    const entry = manifest.files[path]!;
    if (entry.link !== undefined) continue; // a hard link: its bytes are checked under its first name (hardlinks.ts)
    const key = await storedKey(store, sync, path);
    const info = await store.stat(key);
    if (!info) problems.push({ path, problem: 'missing' });
    else if (info.type !== 'file') problems.push({ path, problem: `a ${info.type}, not a file` });
    else if (info.size !== entry.size) problems.push({ path, problem: `damaged: ${info.size} bytes, the manifest says ${entry.size}` });
    else if (hash && (await store.hash(key)) !== entry.sha256) problems.push({ path, problem: 'damaged: content differs from the manifest (sha256)' });
  }
  return { checked: paths.length, problems };
}

/** Record what verify found (an empty list clears it): the next push uploads these files again. */
export async function recordDamaged(host: Host, sync: ResolvedSync, paths: string[]): Promise<void> {
  await updateTrustState(host, sync, (state) => {
    if (paths.length > 0) state.damaged = paths;
    else delete state.damaged;
  });
}
