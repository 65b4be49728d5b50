// `persist verify` of a sync's manifest as the store holds it. Plan and push read a manifest's
// shards from this machine's copies (manifest-cache.ts) whenever the root names their sha256, so a
// shard damaged or deleted in the store goes unseen here while any other machine cannot read the
// manifest at all (nothing can be restored there). verify therefore checks every shard in the
// store against the sha256 its root records: without --hash, the stored shard's size against this
// machine's copy (one stat; a mismatch, or no copy, is confirmed by reading and hashing it), with
// --hash always its bytes. What it finds is recorded (trust-state.ts `damagedManifest`, and a mark
// in the manifest cache) so that the next plan shows `push (repair)` and the push writes those
// shards again although no file changed.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ResolvedBucket, ResolvedSync } from '../../spec/types.js';
import { StoreMissing, type Store } from '../../store/types.js';
import { shardCacheFor } from './manifest-cache.js';
import { MANIFEST_NAME, readManifestFile, SHARD_DIR_NAME, shardDirPath, shardFileName, shardOf, type ManifestRoot, type SyncManifest } from './manifest.js';
import { recordManifestDamage } from './trust-state.js';

export interface ManifestProblem {
  /** Relative to the mirror, e.g. `.persist-sync/0-of-1.json`. */
  path: string;
  problem: string;
  /** The shard's file name, when the problem is a shard's. */
  shard?: string;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The problem of one stored shard, or null when it is what the root records. */
async function checkShard(store: Store, key: string, recorded: string, copySize: number | null, hash: boolean): Promise<string | null> {
  const info = await store.stat(key);
  if (!info) return 'missing';
  if (info.type !== 'file') return `a ${info.type}, not a file`;
  if (!hash && copySize !== null && info.size === copySize) return null;
  let data: Buffer;
  try {
    data = await store.read(key);
  } catch (error) {
    if (error instanceof StoreMissing) return 'missing';
    throw error;
  }
  if (sha256(data) === recorded) return null;
  return `damaged: its content (${data.length} bytes, sha256 ${sha256(data).slice(0, 16)}…) is not the manifest part ${MANIFEST_NAME} records (sha256 ${recorded.slice(0, 16)}…); a machine without a copy of it cannot read the manifest`;
}

async function checkAgainst(store: Store, sync: ResolvedSync, root: ManifestRoot, sizes: (hash: string) => Promise<number | null>, hash: boolean): Promise<ManifestProblem[]> {
  const problems: ManifestProblem[] = [];
  const count = root.shards.length;
  for (const [index, shard] of root.shards.entries()) {
    const name = shardFileName(index, count);
    const problem = await checkShard(store, join(shardDirPath(sync.relTo), name), shard.sha256, await sizes(shard.sha256), hash);
    if (problem) problems.push({ path: `${SHARD_DIR_NAME}/${name}`, problem, shard: name });
  }
  return problems;
}

/**
 * Check the manifest's shards as stored (the root is read from the store again). A problem found
 * is checked once more against the root as it is then: another machine's push writes its shards
 * before its root.
 */
export interface SettleWait {
  /** Who may be pushing now (another machine holding the bucket's lease), or null. */
  pushMayRun: () => Promise<string | null>;
  deadlineMs: number;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export async function verifyStoredManifest(
  host: Host,
  store: Store,
  bucket: ResolvedBucket,
  sync: ResolvedSync,
  hash: boolean,
  wait?: SettleWait,
): Promise<{ checked: number; problems: ManifestProblem[]; maybePushing?: string }> {
  const cache = shardCacheFor(host, bucket, sync.relTo);
  const sizes = (sha: string) => cache.copySize(sha);
  let parsed: Awaited<ReturnType<typeof readManifestFile>>;
  try {
    parsed = await readManifestFile(store, sync.relTo);
  } catch (error) {
    return { checked: 1, problems: [{ path: MANIFEST_NAME, problem: `damaged: ${(error as Error).message}` }] };
  }
  if (!parsed) return { checked: 0, problems: [] };
  if (parsed.version === 1) return { checked: 1, problems: [] }; // one file, read from the store by every plan
  let root = parsed.root;
  let problems = await checkAgainst(store, sync, root, sizes, hash);
  // While another machine may be pushing (it writes shards before its root), its root is awaited
  // (up to the deadline), and the shards are checked again each time the root changed.
  let maybePushing: string | null = null;
  while (problems.length > 0) {
    const again = await readManifestFile(store, sync.relTo).catch(() => null);
    if (again?.version === 2 && JSON.stringify(again.root) !== JSON.stringify(root)) {
      root = again.root;
      problems = await checkAgainst(store, sync, root, sizes, hash);
      if (problems.length === 0) break;
    }
    if (!wait) break;
    maybePushing = await wait.pushMayRun();
    if (maybePushing === null || wait.now() >= wait.deadlineMs) break;
    await wait.sleep(Math.min(500, Math.max(10, wait.deadlineMs - wait.now())));
  }
  return { checked: 1 + root.shards.length, problems, ...(problems.length > 0 && maybePushing ? { maybePushing } : {}) };
}

/**
 * Record what verifyStoredManifest found (nothing: clears an earlier finding): the shards, marked
 * in the cache for the push, and the paths they list (from `manifest`, this machine's reading) in
 * the trust state, for the plan.
 */
export async function recordStoredManifestDamage(host: Host, bucket: ResolvedBucket, sync: ResolvedSync, manifest: SyncManifest | null, problems: readonly ManifestProblem[]): Promise<void> {
  const shards = problems.flatMap((problem) => (problem.shard ? [problem.shard] : []));
  const paths: string[] = [];
  if (shards.length > 0 && manifest) {
    const indices = new Set<number>();
    let count = 0;
    for (const name of shards) {
      const match = /^(\d+)-of-(\d+)\.json$/.exec(name);
      if (!match) continue;
      indices.add(Number(match[1]));
      count = Number(match[2]);
    }
    for (const path of Object.keys(manifest.files)) if (count > 0 && indices.has(shardOf(path, count))) paths.push(path);
  }
  await shardCacheFor(host, bucket, sync.relTo).markStoredDamaged(shards);
  await recordManifestDamage(host, sync, shards, paths);
}
