// `persist verify` for syncs: every file the manifest lists is checked in the store (size; with
// `hash`, content). What is missing or damaged is recorded in the sync's local trust state, so that
// the next plan pushes those files again (`push`, reason "repair") even though they did not change.
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import { readManifest, readManifestFile, type SyncManifest } from './manifest.js';
import { updateTrustState } from './trust-state.js';
import { storedKey } from './names.js';

export interface StoredProblem {
  path: string;
  problem: string;
}

/**
 * Check the stored files the manifest lists (`only`: just these paths; one the manifest no longer
 * lists is no problem: a push removed it).
 */
export async function verifyMirror(store: Store, sync: ResolvedSync, manifest: SyncManifest, hash: boolean, only?: readonly string[]): Promise<{ checked: number; problems: StoredProblem[] }> {
  const problems: StoredProblem[] = [];
  const paths = only ? [...new Set(only)].filter((path) => manifest.files[path] !== undefined).sort() : Object.keys(manifest.files).sort();
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

/**
 * Whether two reads of a mirror's manifest are one version: the same root (time, generation) and,
 * for a sharded one, the same shards as read (a push writes its shards before its root).
 */
export function sameManifest(a: SyncManifest, b: SyncManifest): boolean {
  const shards = (m: SyncManifest) => (m.storage.version === 2 ? m.storage.shardHashes.join(',') : '');
  return a.pushedAt === b.pushedAt && JSON.stringify(a.lineage ?? null) === JSON.stringify(b.lineage ?? null) && shards(a) === shards(b) && (a.storage.version !== 1 || Object.keys(a.files).length === Object.keys(b.files).length);
}

/**
 * Re-check files found missing or damaged against the manifest as the store holds it now: a push
 * in progress (of another machine) replaces files first and its manifest last, so a file it
 * rewrote mismatches the manifest read before. The manifest is read again at once and, while
 * `pushMayRun` names someone who may be pushing (another machine holding the bucket's lease), every
 * `pollMs` until `deadlineMs`; each time it changed, what still mismatches is checked again.
 * Returns what remains, and who may still be pushing when the wait ended with problems left.
 */
export async function recheckProblems(
  store: Store,
  sync: ResolvedSync,
  manifest: SyncManifest,
  problems: StoredProblem[],
  hash: boolean,
  wait: { pushMayRun: () => Promise<string | null>; deadlineMs: number; now: () => number; sleep: (ms: number) => Promise<void>; pollMs?: number },
): Promise<{ problems: StoredProblem[]; maybePushing: string | null }> {
  let current = manifest;
  let left = problems;
  let seenRoot: string | null = null;
  for (;;) {
    // Polled: the root alone (one read); the whole manifest once at first and again each time the root changed.
    const root = await readManifestFile(store, sync.relTo).then((parsed) => JSON.stringify(parsed), () => null);
    if (root !== seenRoot) {
      seenRoot = root;
      const again = await readManifest(store, sync.relTo).catch(() => null); // caught mid-write: as it was
      if (again && !sameManifest(again, current)) {
        current = again;
        left = (await verifyMirror(store, sync, again, hash, left.map((problem) => problem.path))).problems;
        if (left.length === 0) return { problems: left, maybePushing: null };
      }
    }
    const who = await wait.pushMayRun();
    if (who === null) return { problems: left, maybePushing: null };
    if (wait.now() >= wait.deadlineMs) return { problems: left, maybePushing: who };
    await wait.sleep(Math.min(wait.pollMs ?? 500, Math.max(10, wait.deadlineMs - wait.now())));
  }
}

/** Record what verify found (an empty list clears it): the next push uploads these files again. */
export async function recordDamaged(host: Host, sync: ResolvedSync, paths: string[]): Promise<void> {
  await updateTrustState(host, sync, (state) => {
    if (paths.length > 0) state.damaged = paths;
    else delete state.damaged;
  });
}
