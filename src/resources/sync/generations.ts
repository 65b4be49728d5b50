// Lineage of a sync: generations, history and the rules that keep a push from overwriting what
// this machine has not seen (docs/architecture.md, lineage). The sync module calls in at a few points:
// observe (observeSyncLineage), diff (syncLineageDecision, pure), push (SyncGeneration), restore
// (prepareRestore, recordRestore).
//
// Layout in the mirror, beside the manifest (all under the reserved `.persist-sync/` folder):
//   .persist-sync.json                      the root names the current generation (`lineage`)
//   .persist-sync/generations/<n>.json      the record of generation n (number, parent, time,
//                                           machine, host, files, bytes)
//   .persist-sync/generations/<n>/root.json         n's root, saved when n+1 replaced it
//   .persist-sync/generations/<n>/.persist-sync-folders.json   n's folder modes (folders.ts), when n+1
//                                           changed them
//   .persist-sync/generations/<n>/shards/<name>     n's shards that n+1 rewrote
//   .persist-sync/generations/<n>/files/<path>      n's files that n+1 changed or deleted
// So a push writes, besides its own changes, one copy per changed or deleted file (a deleted
// file is moved, not copied), per rewritten shard, and the root: in proportion to what changed.
// Generation n's content is read back from the first of generations/n, n+1, ... (up to the
// current) that holds a path, else from the live mirror: the first push that changed a file after
// n saved the version n had. Pruning generation n (the oldest) removes only generations/n*, which
// no newer generation needs.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ActionError, PersistError } from '../../errors.js';
import type { ApplyContext, Change, Decision, ObserveContext, PlanOptions } from '../../engine/types.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedEnvironment, ResolvedSync } from '../../spec/types.js';
import { describeMachine, ensureMachine, peekMachine } from '../../lineage/machine.js';
import {
  describeStore,
  generationsToPrune,
  parseRecord,
  sameStore,
  serializeRecord,
  storeIdentity,
  treeDigestInput,
  type GenerationRecord,
  type LineageStamp,
  type StoreIdentity,
} from '../../lineage/generation.js';
import { readLocalRecords, treeDigest, writeLocalRecord, type LocalRecord } from '../../lineage/record.js';
import { moveAsideExcept } from '../../lineage/aside.js';
import { formatAge, plural } from '../../output/format.js';
import { createPathMatcher } from './glob.js';
import { FOLDERS_NAME, readFolderModes, writeFolderModes, type FolderModes } from './folders.js';
import { GENERATIONS_DIR_NAME, SHARD_DIR_NAME, manifestPath, parseManifestFile, readManifestFile, parseShard, shardDirPath, shardFileName, type ManifestEntry, type SyncManifest } from './manifest.js';
import { readSyncState } from './state.js';
import { readTrustState } from './trust-state.js';
import type { TreeComparison } from './compare.js';
import { syncExcluder, walkTree, type TreeFile } from './tree.js';
import { mirrorKey, storedKey } from './names.js';
import { relativeKey } from '../../store/key-names.js';

export const DEFAULT_SYNC_KEEP = 10;

/** What lineage observes (part of the sync's fingerprinted state: small). */
export interface SyncLineage {
  store: StoreIdentity;
  /** The store's current generation (null: no manifest; generation 0 when it predates lineage). */
  current: LineageStamp | null;
  /** The generation this environment's resource last saw in this store (null: never). */
  seen: number | null;
  /** Where the local folder's data came from, when that is another store. */
  foreign: { store: StoreIdentity; environment: string; address: string; event: string; at: string } | null;
  /** The local folder is exactly as it was right after the last push or restore. */
  unchangedSinceSeen: boolean;
  /** The local folder is as `persist rollback` left it: its push may shrink the mirror. */
  rolledBack?: boolean;
  /** The last event on this folder was a rollback (changed since or not): its counts (LocalRecord.rollback). */
  rollback?: { files: number; dropped: number };
}

export function addressOfSync(sync: ResolvedSync): string {
  return `sync.${sync.name}`;
}

export function syncKeep(sync: ResolvedSync): number {
  return sync.keep !== undefined && Number.isInteger(sync.keep) && sync.keep >= 1 ? sync.keep : DEFAULT_SYNC_KEEP;
}

export function generationsKey(sync: ResolvedSync): string {
  return join(shardDirPath(sync.relTo), GENERATIONS_DIR_NAME);
}

function recordKey(sync: ResolvedSync, generation: number): string {
  return join(generationsKey(sync), `${generation}.json`);
}

function deltaKey(sync: ResolvedSync, generation: number): string {
  return join(generationsKey(sync), String(generation));
}

/** The stamp of a manifest: its lineage, or generation 0 for one written before lineage. */
export function manifestStamp(manifest: SyncManifest): LineageStamp {
  return manifest.lineage ?? { generation: 0, parent: null, time: manifest.pushedAt, machine: null, host: null };
}

function digestOf(files: Record<string, TreeFile>): string {
  return treeDigest(treeDigestInput(files));
}

// --- observe ---

export async function observeSyncLineage(
  sync: ResolvedSync,
  ctx: Pick<ObserveContext, 'host' | 'env'>,
  manifest: SyncManifest | null,
  local: Record<string, TreeFile> | null,
  firstPushBy?: string,
): Promise<SyncLineage> {
  const { host, env } = ctx;
  const bucket = env.buckets[sync.bucket]!;
  const store = storeIdentity(bucket, sync.relTo);
  const address = addressOfSync(sync);
  const records = await readLocalRecords(host, env.environment, address, sync.from);
  const current = manifest ? manifestStamp(manifest) : null;
  let seen: number | null = null;
  if (records.resource && sameStore(records.resource.store, store)) seen = records.resource.generation;
  else if (!records.resource && !records.folder && !manifest?.lineage) {
    // Pushed or restored by persist before lineage existed (a mirror without a manifest: its
    // manifest removed since): this folder was synced with this store, generation 0.
    const old = await readSyncState(host, sync);
    if (old.lastPush || old.lastRestore) seen = 0;
  }
  // This machine wrote the store's generation (a push whose local record a crash cut off): seen.
  const me = current?.machine || firstPushBy ? await peekMachine(host) : null;
  if (current && me && current.machine === me.id && (seen === null || seen < current.generation)) seen = current.generation;
  // A mirror without a manifest where this machine's own first push was cut off: synced with it.
  if (!current && seen === null && me && firstPushBy === me.id) seen = 0;
  const folder = records.folder;
  const foreign = folder && !sameStore(folder.store, store) ? { store: folder.store, environment: folder.environment, address: folder.address, event: folder.event, at: folder.at } : null;
  const recordTree = records.resource && sameStore(records.resource.store, store) ? records.resource.tree : null;
  const unchangedSinceSeen = local !== null && recordTree !== null && digestOf(local) === recordTree;
  const rolledBack = unchangedSinceSeen && records.resource?.event === 'rollback';
  const rollback = recordTree !== null && records.resource?.event === 'rollback' ? records.resource.rollback : undefined;
  return { store, current, seen, foreign, unchangedSinceSeen, ...(rolledBack ? { rolledBack } : {}), ...(rollback ? { rollback } : {}) };
}

// --- diff (pure) ---

export interface LineageVerdict {
  /** undefined: lineage has nothing to say, the sync's own rules decide. */
  decision?: Decision | null;
  /** The restore first moves the local folder aside. */
  aside: boolean;
  /** The push of a rolled-back folder is what the user asked for: the shrink guard does not apply. */
  allowShrink?: boolean;
  /**
   * A rolled-back folder the agent has written to since: the shrink guard measures against the
   * generation rolled back to (its file count), the files the rollback left out not counted.
   */
  shrinkSince?: { files: number; dropped: number };
}

function whoWrote(stamp: LineageStamp): string {
  return `${describeMachine({ id: stamp.machine, host: stamp.host })} at ${stamp.time}`;
}

/**
 * Called by diffSync once the mirror is known, for a local folder with files. Pure.
 */
export function syncLineageDecision(
  sync: ResolvedSync,
  lineage: SyncLineage | undefined,
  mirrorFiles: number,
  comparison: TreeComparison,
  options: PlanOptions,
): LineageVerdict {
  if (!lineage) return { aside: false };
  const address = addressOfSync(sync);
  const base = { address: address as Decision['address'], kind: 'sync' as const };
  const conflict = (message: string, fix: string, overrideFlag?: string): Decision => ({
    ...base,
    action: 'conflict',
    phase: 'push',
    reason: message,
    changes: [],
    conflict: { message, fix, ...(overrideFlag ? { overrideFlag } : {}) },
  });
  const differ = comparison.added.length + comparison.changed.length;

  if (lineage.foreign) {
    const { foreign } = lineage;
    const then = mirrorFiles > 0 ? `it is then restored from ${describeStore(lineage.store)}` : 'the folder then starts empty and its first push starts this store';
    return {
      aside: false,
      decision: conflict(
        `${sync.from} holds data of ${describeStore(foreign.store)} (environment ${foreign.environment}, last ${foreign.event} ${foreign.at}); it is never pushed into ${describeStore(lineage.store)}`,
        `To start clean, move the folder aside (mv ${sync.from} ${sync.from}.${foreign.environment}) and apply again: ${then}.`,
      ),
    };
  }
  const current = lineage.current;
  if (mirrorFiles === 0) return { aside: false }; // an empty place: a first push

  const restore = (reason: string, note: string | undefined, changes: Change[]): LineageVerdict => ({
    aside: differ > 0,
    decision: { ...base, action: 'restore', phase: 'restore', reason, changes, ...(note ? { note } : {}) },
  });
  const asideNote = differ > 0 ? `local files kept aside: ${differ} differ` : undefined;
  const asideChange: Change[] = differ > 0 ? [{ field: 'local', before: `${sync.from} (${plural(differ, 'file')} ${differ === 1 ? 'differs' : 'differ'} from the store)`, after: 'kept aside in the backups' }] : [];

  if (!current) {
    // A mirror without a manifest (made by hand or by another tool): data this machine never saw,
    // unless this folder was synced with this store before (its manifest removed since: rule 6,
    // a push that compares by content). Same-size files cannot be told apart from a listing:
    // they count as differing, so nothing local is overwritten unkept.
    if (lineage.seen !== null) return { aside: false };
    const unknown = differ + comparison.unverified.length;
    return {
      aside: unknown > 0,
      decision: {
        ...base,
        action: 'restore',
        phase: 'restore',
        reason: `the mirror ${sync.to} holds ${plural(mirrorFiles, 'file')} but no manifest (made by hand or by another tool), and ${sync.from} was never synced with it: restored, never pushed over`,
        changes: unknown > 0 ? [{ field: 'local', before: `${sync.from} (${plural(unknown, 'file')} may differ from the mirror)`, after: 'kept aside in the backups' }] : [],
        ...(unknown > 0 ? { note: `local files kept aside: ${unknown} may differ` } : {}),
      },
    };
  }
  const generationChange: Change = { field: 'generation', before: lineage.seen === null ? 'never seen' : String(lineage.seen), after: String(current.generation) };

  if (lineage.seen === null) {
    return restore(
      `the store holds generation ${current.generation} (${plural(mirrorFiles, 'file')}, written by ${whoWrote(current)}), which this machine has never restored or pushed: restored, never pushed over`,
      asideNote,
      [generationChange, ...asideChange],
    );
  }
  if (lineage.seen === current.generation) {
    if (lineage.rolledBack) return { aside: false, allowShrink: true };
    return lineage.rollback ? { aside: false, shrinkSince: lineage.rollback } : { aside: false };
  }

  const takeIt = `persist rollback ${address} --to ${current.generation}`;
  if (lineage.seen < current.generation) {
    if (options.forcePush) {
      return { aside: false, decision: { ...base, action: 'push', phase: 'push', reason: `--force-push: pushing over generation ${current.generation} written by ${whoWrote(current)} (it stays in history)`, changes: [generationChange] } };
    }
    if (lineage.unchangedSinceSeen || differ + comparison.removed.length === 0) {
      return restore(`${sync.from} is unchanged since generation ${lineage.seen}; the store holds generation ${current.generation}, written by ${whoWrote(current)}: restore it`, asideNote, [generationChange, ...asideChange]);
    }
    return {
      aside: false,
      decision: conflict(
        `the store holds generation ${current.generation}, written by ${whoWrote(current)}, newer than generation ${lineage.seen} this machine last saw; ${sync.from} changed since, and a push would replace the other machine's data`,
        `To take the store's (the local folder kept aside in the backups): ${takeIt}. To push over it (generation ${current.generation} stays in history): persist apply --force-push.`,
        '--force-push',
      ),
    };
  }
  if (options.forcePush) {
    return { aside: false, decision: { ...base, action: 'push', phase: 'push', reason: `--force-push: pushing over generation ${current.generation} (it stays in history)`, changes: [generationChange] } };
  }
  return {
    aside: false,
    decision: conflict(
      `the store holds generation ${current.generation}, older than generation ${lineage.seen} this machine pushed: the store was rolled back or replaced since`,
      `To take the store's (the local folder kept aside): ${takeIt}. To push over it: persist apply --force-push.`,
      '--force-push',
    ),
  };
}

/** An empty local folder that last held another store's data: apply records that it starts clean here. */
export function cleanStartAction(sync: ResolvedSync, lineage: SyncLineage): Decision {
  const foreign = lineage.foreign!;
  return {
    address: addressOfSync(sync) as Decision['address'],
    kind: 'sync',
    action: 'restore',
    phase: 'restore',
    reason: `${sync.from} is empty: it no longer holds the data of ${describeStore(foreign.store)}; recorded as starting clean in ${describeStore(lineage.store)} (nothing copied)`,
    changes: [{ field: 'synced with', before: describeStore(foreign.store), after: describeStore(lineage.store) }],
  };
}

export async function recordCleanStart(sync: ResolvedSync, ctx: ApplyContext): Promise<{ summary: string }> {
  await ensureMachine(ctx.host);
  await recordEvent(ctx.host, ctx.env, sync, 0, null, 'seen', null);
  return { summary: `recorded that ${sync.from} starts clean in this store` };
}

// --- apply: restore ---

/** Before a restore that lineage decided over local files: move them aside (the excluded ones stay). Returns a note. */
export async function prepareRestore(sync: ResolvedSync, lineage: SyncLineage | undefined, comparison: TreeComparison, localFiles: number, restoreIncomplete: boolean, ctx: ApplyContext): Promise<string | null> {
  if (!lineage || localFiles === 0 || restoreIncomplete) return null;
  const verdict = syncLineageDecision(sync, lineage, 1, comparison, ctx.options);
  if (!verdict.aside) return null;
  const where = await moveAsideExcept(ctx.host, ctx.env.workspace, addressOfSync(sync), sync.from, createPathMatcher(sync.exclude));
  return `the local files were kept aside in ${where}`;
}

async function recordEvent(host: Host, env: ResolvedEnvironment, sync: ResolvedSync, generation: number, stamp: LineageStamp | null, event: LocalRecord['event'], tree: string | null): Promise<void> {
  await writeLocalRecord(host, {
    environment: env.environment,
    address: addressOfSync(sync),
    local: sync.from,
    store: storeIdentity(env.buckets[sync.bucket]!, sync.relTo),
    generation,
    stamp,
    tree,
    at: host.now().toISOString(),
    event,
  });
}

/** The digest of the local folder as a lineage record keeps it (read by a walk). */
export async function localDigest(host: Host, sync: ResolvedSync, statted?: ReadonlyMap<string, TreeFile>): Promise<string> {
  return digestOf((await walkTree(host, sync.from, syncExcluder(sync.exclude), statted)).files);
}

/** After a restore from the current manifest: this machine has seen its generation; `tree`: localDigest of the restored folder. */
export async function recordRestore(sync: ResolvedSync, manifest: SyncManifest | null, ctx: ApplyContext, tree: string): Promise<void> {
  if (!manifest) return;
  const stamp = manifestStamp(manifest);
  await ensureMachine(ctx.host);
  await recordEvent(ctx.host, ctx.env, sync, stamp.generation, stamp, 'restore', tree);
}

// --- apply: push ---

async function readRootStamp(store: Store, sync: ResolvedSync): Promise<LineageStamp | null> {
  const parsed = await readManifestFile(store, sync.relTo);
  if (!parsed) return null;
  if (parsed.version === 1) return manifestStamp(parsed.manifest);
  return parsed.root.lineage ?? { generation: 0, parent: null, time: parsed.root.pushedAt, machine: null, host: null };
}

/**
 * One push's new generation: keeps what it replaces, stamps the root, prunes, records locally.
 * Created at the start of a push with the manifest the push compares against.
 */
export class SyncGeneration {
  private readonly base: LineageStamp | null;
  private readonly deltas: string | null;
  private stampWritten: LineageStamp | null = null;
  /** Stored files verify found damaged (trust-state.ts): their copies are kept only if whole after all. */
  private readonly damaged = new Set<string>();

  private constructor(
    private readonly sync: ResolvedSync,
    private readonly store: Store,
    private readonly ctx: ApplyContext,
    private readonly manifest: SyncManifest | null,
    private readonly machine: { id: string; host: string },
    private readonly foldersChange: boolean,
  ) {
    this.base = manifest ? manifestStamp(manifest) : null;
    this.deltas = this.base ? deltaKey(sync, this.base.generation) : null;
  }

  /** `foldersChange`: the push changes the recorded folder modes (SyncObserved.folderModesChanged). */
  static async begin(sync: ResolvedSync, store: Store, manifest: SyncManifest | null, ctx: ApplyContext, foldersChange = false): Promise<SyncGeneration> {
    const machine = await ensureMachine(ctx.host);
    const generation = new SyncGeneration(sync, store, ctx, manifest, machine, foldersChange);
    const trust = await readTrustState(ctx.host, sync);
    const manifestOnly = new Set(trust.damagedManifest?.paths ?? []);
    for (const path of trust.damaged ?? []) if (!manifestOnly.has(path)) generation.damaged.add(path);
    await generation.checkRoot('before the push');
    return generation;
  }

  /** The store's root still names the generation this push builds on (the check-then-write window is this small). */
  private async checkRoot(when: string): Promise<void> {
    const now = await readRootStamp(this.store, this.sync);
    const expected = this.base?.generation ?? null;
    if ((now?.generation ?? null) === expected) return;
    const who = now ? `generation ${now.generation}, written by ${whoWrote(now)}` : 'no manifest';
    throw new ActionError(
      `${addressOfSync(this.sync)}: the store now holds ${who} (${when}), not generation ${expected ?? 'none'} this push was planned on; nothing more was written. Run persist plan to see what to do.`,
    );
  }

  private async preserve(key: string, relative: string, move: boolean): Promise<void> {
    if (!this.deltas) return;
    const target = join(this.deltas, relative);
    if (await this.store.stat(target)) {
      // Already kept by an interrupted push of this generation: the first copy is the old version.
      if (move) await this.store.remove(key);
      return;
    }
    if (!(await this.store.stat(key))) return;
    if (move) await this.store.rename(key, target);
    else await this.store.copy(key, target);
  }

  /**
   * Before a file listed in the manifest is overwritten. A stored copy `persist verify` found
   * damaged (trust-state.ts) is not kept as the old generation's when it still does not hold that
   * generation's bytes: kept, it would make the generation unrestorable; left out, the generation
   * reads the file from the newer copy, which is its bytes when the local file did not change
   * (a repair).
   */
  async beforeOverwrite(path: string): Promise<void> {
    const entry = this.manifest?.files[path];
    if (!entry) return;
    const key = mirrorKey(this.sync, path);
    if (this.damaged.has(path) && !(await this.holds(key, entry))) return;
    await this.preserve(key, join('files', relativeKey(path)), false);
  }

  private async holds(key: string, entry: ManifestEntry): Promise<boolean> {
    const info = await this.store.stat(key).catch(() => null);
    if (!info || info.type !== 'file' || info.size !== entry.size) return false;
    return (await this.store.hash(key).catch(() => null)) === entry.sha256;
  }

  /** For the ManifestWriter: a shard about to be rewritten or removed. */
  readonly beforeShardReplace = async (key: string): Promise<void> => {
    await this.preserve(key, join('shards', key.slice(key.lastIndexOf('/') + 1)), false);
  };

  /** A file deleted from the mirror: moved into the history instead. */
  async retire(path: string): Promise<void> {
    if (!this.deltas) {
      await this.store.remove(mirrorKey(this.sync, path));
      return;
    }
    await this.preserve(mirrorKey(this.sync, path), join('files', relativeKey(path)), true);
  }

  /**
   * Right before the root is written: check it again, keep the old root, write the new record of
   * what the root lists (`committed`: its entries; a file never stored is not among them). Returns
   * the new stamp.
   */
  async beforeCommit(committed: readonly ManifestEntry[]): Promise<LineageStamp> {
    await this.checkRoot('right before the manifest was written; the files copied so far are listed by no manifest');
    const { sync, store, ctx } = this;
    const time = ctx.host.now().toISOString();
    if (this.base) {
      await this.preserve(manifestPath(sync.relTo), 'root.json', false);
      // The folder modes the replaced generation had, when this push changes them (it writes the
      // new ones after its root); unchanged, they are read from a later generation like a file.
      if (this.foldersChange) await writeFolderModes(store, this.deltas!, await readFolderModes(store, sync.relTo));
      if (this.base.generation === 0 && !(await store.stat(recordKey(sync, 0)))) {
        // The generation made before lineage gets a record, so history lists it.
        const old = this.manifest!;
        const bytesBefore = Object.values(old.files).reduce((sum, entry) => sum + entry.size, 0);
        await store.write(recordKey(sync, 0), serializeRecord({ ...this.base, files: Object.keys(old.files).length, bytes: bytesBefore }));
      }
    }
    const generation = (this.base?.generation ?? 0) + 1;
    const stamp: LineageStamp = { generation, parent: this.base?.generation ?? null, time, machine: this.machine.id, host: this.machine.host };
    const bytes = committed.reduce((sum, entry) => sum + entry.size, 0);
    await store.write(recordKey(sync, generation), serializeRecord({ ...stamp, files: committed.length, bytes }));
    this.stampWritten = stamp;
    return stamp;
  }

  /** After the root and the deletions: prune old generations, record what this machine pushed. */
  async after(localFiles: Record<string, TreeFile>): Promise<void> {
    const stamp = this.stampWritten;
    if (!stamp) return;
    const { sync, store, ctx } = this;
    const present = new Set<number>();
    for (const name of await store.readdir(generationsKey(sync))) {
      const match = /^(\d+)(\.json)?$/.exec(name);
      if (match) present.add(Number(match[1]));
    }
    for (const old of generationsToPrune([...present], stamp.generation, syncKeep(sync))) {
      await store.remove(recordKey(sync, old));
      await store.remove(deltaKey(sync, old));
    }
    await recordEvent(ctx.host, ctx.env, sync, stamp.generation, stamp, 'push', digestOf(localFiles));
  }
}

// --- history ---

export interface HistoryEntry extends GenerationRecord {
  current: boolean;
}

/** The generations kept in the store, oldest first. */
export async function syncHistory(sync: ResolvedSync, store: Store, manifest: SyncManifest | null): Promise<HistoryEntry[]> {
  const current = manifest ? manifestStamp(manifest).generation : null;
  const entries: HistoryEntry[] = [];
  const names = await store.readdir(generationsKey(sync));
  for (const name of names) {
    const match = /^(\d+)\.json$/.exec(name);
    if (!match) continue;
    const key = join(generationsKey(sync), name);
    let record: GenerationRecord | null = null;
    try {
      record = parseRecord(JSON.parse((await store.read(key)).toString('utf8')));
    } catch {
      record = null;
    }
    if (!record || record.generation !== Number(match[1])) continue;
    if (current !== null && record.generation > current) continue; // written by a push that never committed its root
    if (record.generation !== current && !(await store.stat(deltaKey(sync, record.generation)))) {
      // A generation whose saved state is gone (pruned while listed) is not offered.
      continue;
    }
    entries.push({ ...record, current: record.generation === current });
  }
  if (manifest && current !== null && !entries.some((entry) => entry.current)) {
    const stamp = manifestStamp(manifest);
    entries.push({ ...stamp, files: Object.keys(manifest.files).length, bytes: Object.values(manifest.files).reduce((sum, e) => sum + e.size, 0), current: true });
  }
  return entries.sort((a, b) => a.generation - b.generation);
}

// --- reading an earlier generation ---

/** Where generation g's version of a key lives: the first of generations/g..current-1 holding it, else the live key. */
async function locate(sync: ResolvedSync, store: Store, generation: number, current: number, relative: string, live: string): Promise<string> {
  for (let k = generation; k < current; k++) {
    const key = join(deltaKey(sync, k), relative);
    if (await store.stat(key)) return key;
  }
  return live;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface StoredGeneration {
  files: Record<string, ManifestEntry>;
  /** The key holding a path's bytes in generation g. */
  keyOf: (path: string) => Promise<string>;
  /** Generation g's recorded folder modes (folders.ts). */
  folderModes: () => Promise<FolderModes>;
}

/** Generation g's manifest entries, where each file's bytes are, and its folder modes. */
export async function readGeneration(sync: ResolvedSync, store: Store, manifest: SyncManifest, generation: number): Promise<StoredGeneration> {
  const current = manifestStamp(manifest).generation;
  const folderModes = async (): Promise<FolderModes> => {
    const key = await locate(sync, store, generation, current, FOLDERS_NAME, join(sync.relTo, FOLDERS_NAME));
    return readFolderModes(store, key.slice(0, -FOLDERS_NAME.length - 1));
  };
  if (generation === current) return { files: manifest.files, keyOf: (path) => storedKey(store, sync, path), folderModes };
  if (generation > current || !(await store.stat(deltaKey(sync, generation)))) {
    throw new PersistError(`${addressOfSync(sync)}: generation ${generation} is not kept in ${store.where(generationsKey(sync))} (persist history lists the ones that are)`);
  }
  const rootKey = join(deltaKey(sync, generation), 'root.json');
  const parsed = parseManifestFile((await store.read(rootKey)).toString('utf8'), store.where(rootKey));
  let files: Record<string, ManifestEntry>;
  if (parsed.version === 1) files = parsed.manifest.files;
  else {
    files = {};
    const count = parsed.root.shards.length;
    for (const [index, shard] of parsed.root.shards.entries()) {
      const name = shardFileName(index, count);
      const key = await locate(sync, store, generation, current, join('shards', name), join(shardDirPath(sync.relTo), name));
      const data = await store.read(key);
      if (sha256(data) !== shard.sha256) throw new PersistError(`${store.where(key)}: does not match generation ${generation}'s manifest (sha256 differs)`);
      Object.assign(files, parseShard(data.toString('utf8'), store.where(key), index, count));
    }
  }
  return { files, keyOf: async (path) => locate(sync, store, generation, current, join('files', relativeKey(path)), await storedKey(store, sync, path)), folderModes };
}

// --- status ---

export function lineageFacts(lineage: SyncLineage | undefined, now: Date): Record<string, string | number | null> {
  if (!lineage) return {};
  const facts: Record<string, string | number | null> = {
    generation: lineage.current?.generation ?? null,
    seenHere: lineage.seen,
  };
  const current = lineage.current;
  if (current && lineage.seen !== null && current.generation > lineage.seen) {
    facts.newerBy = `${describeMachine({ id: current.machine, host: current.host })}, ${formatAge(Date.parse(current.time), now)}`;
  }
  if (lineage.foreign) facts.holds = describeStore(lineage.foreign.store);
  return facts;
}

export { peekMachine };

// --- verify and history: kept generations that cannot be read back ---

export interface GenerationProblem {
  /** The generation (null: not known, its record cannot be read). */
  generation: number | null;
  /** Relative to the mirror (sync) or the bundle's folder key. */
  path: string;
  problem: string;
}

/** The numbers of the generation records (`<n>.json`) and kept states (`<n>/`) in the store. */
async function keptNumbers(sync: ResolvedSync, store: Store): Promise<{ records: number[]; deltas: number[] }> {
  const records: number[] = [];
  const deltas: number[] = [];
  for (const name of await store.readdir(generationsKey(sync)).catch(() => [] as string[])) {
    const match = /^(\d+)(\.json)?$/.exec(name);
    if (!match) continue;
    (match[2] ? records : deltas).push(Number(match[1]));
  }
  return { records: records.sort((a, b) => a - b), deltas: deltas.sort((a, b) => a - b) };
}

function readRecordProblem(error: unknown): string {
  return error instanceof SyntaxError ? `not valid JSON (${error.message})` : error instanceof Error ? error.message : String(error);
}

/**
 * Generation records in the store that cannot be read (not JSON, not a record, another number)
 * while their kept state is there: history lists them as damaged instead of leaving them out.
 * Only generations older than the current one (a newer record is an uncommitted push's).
 */
export async function damagedSyncRecords(sync: ResolvedSync, store: Store, manifest: SyncManifest | null): Promise<GenerationProblem[]> {
  const current = manifest ? manifestStamp(manifest).generation : null;
  const { records, deltas } = await keptNumbers(sync, store);
  const problems: GenerationProblem[] = [];
  for (const generation of records) {
    if (current !== null && generation >= current) continue;
    const key = recordKey(sync, generation);
    let reason: string | null = null;
    try {
      const record = parseRecord(JSON.parse((await store.read(key)).toString('utf8')));
      if (!record) reason = 'not a generation record ({generation, parent, time, machine, host, files, bytes})';
      else if (record.generation !== generation) reason = `it records generation ${record.generation}, not ${generation}`;
    } catch (error) {
      reason = readRecordProblem(error);
    }
    if (reason === null) continue;
    if (!deltas.includes(generation)) continue; // pruned while listed: not offered anyway
    problems.push({ generation, path: `${SHARD_DIR_NAME}/${GENERATIONS_DIR_NAME}/${generation}.json`, problem: `its record cannot be read: ${reason}` });
  }
  return problems;
}

/**
 * Check every kept generation older than the current one (the current one is the live mirror,
 * checked against its manifest): its record, its saved root and shards, and each file it lists
 * whose bytes are kept under generations/ (size; with `hash`, content), or, for a file no later
 * push saved, that the live copy is still that file. Returns what was checked and the problems,
 * by generation.
 */
export async function verifySyncGenerations(sync: ResolvedSync, store: Store, manifest: SyncManifest, hash: boolean): Promise<{ checked: number; problems: GenerationProblem[] }> {
  const current = manifestStamp(manifest).generation;
  const { deltas } = await keptNumbers(sync, store);
  const problems: GenerationProblem[] = await damagedSyncRecords(sync, store, manifest);
  const where = (key: string) => (key.startsWith(`${sync.relTo}/`) ? key.slice(sync.relTo.length + 1) : key);
  // Each kept state's files, listed once: relative key -> size.
  const listed = new Map<number, Record<string, { size: number }>>();
  const filesOf = async (generation: number) => {
    let files = listed.get(generation);
    if (!files) {
      files = await store.list(join(deltaKey(sync, generation), 'files'), () => false).then((listing) => listing.files, () => ({}));
      listed.set(generation, files);
    }
    return files;
  };
  let checked = 0;
  for (const generation of deltas) {
    if (generation >= current) continue;
    let stored: StoredGeneration;
    try {
      stored = await readGeneration(sync, store, manifest, generation);
    } catch (error) {
      problems.push({ generation, path: where(join(deltaKey(sync, generation), 'root.json')), problem: `its manifest cannot be read: ${error instanceof Error ? error.message : String(error)}` });
      continue;
    }
    for (const [path, entry] of Object.entries(stored.files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (entry.link !== undefined) continue;
      const relative = relativeKey(path);
      let key: string | null = null;
      let size: number | undefined;
      for (let k = generation; k < current && key === null; k++) {
        const kept = (await filesOf(k))[relative];
        if (kept) {
          key = join(deltaKey(sync, k), 'files', relative);
          size = kept.size;
        }
      }
      if (key === null) {
        // No later push saved it: the live copy is that file, as long as the current manifest lists the same bytes.
        const live = manifest.files[path];
        if (live && live.link === undefined && live.sha256 === entry.sha256 && live.size === entry.size) continue;
        checked += 1;
        problems.push({ generation, path, problem: `its kept copy is missing (expected in ${where(join(deltaKey(sync, generation), 'files', relative))} or a later generation's)` });
        continue;
      }
      checked += 1;
      if (size !== entry.size) problems.push({ generation, path, problem: `damaged: ${where(key)} holds ${size} bytes, generation ${generation}'s manifest says ${entry.size}` });
      else if (hash && (await store.hash(key)) !== entry.sha256) problems.push({ generation, path, problem: `damaged: ${where(key)} differs from generation ${generation}'s manifest (sha256)` });
    }
  }
  return { checked, problems: problems.sort((a, b) => (a.generation ?? -1) - (b.generation ?? -1)) };
}
