// `sync.<name>`: a local folder mirrored into the mount (SQLite files, lock files, folders
// rewritten in place: things that are unsafe on FUSE). Restored at start, pushed on each apply.
//
// The rules, in the order diff applies them (the first duty: an empty or fresh local folder
// never overwrites a good mirror):
//  1. A local path that is not a folder, a mirror path that is not a folder, or an unreadable
//     manifest is a conflict: persist will not guess.
//  2. Mount not ready: the mirror is unknown. Local empty → `restore` (what to restore is decided
//     after the mount); local has files → `push` (compared with the mirror after the mount). Apply
//     re-observes and re-decides, so neither can wipe anything.
//  3. Local missing or empty (no files after excludes), or left half-restored by an interrupted
//     restore, and the mirror has files → `restore`. Local empty and mirror empty → nothing.
//     A push never starts from an empty local folder, so it can never delete because of one.
//  4. Local has files and the mirror none → `push` of every file.
//  5. Both have files. The mirror's files that are missing locally are "removed". With
//     `delete: true` a push deletes them from the mirror; with `delete: false` it keeps them in
//     the mirror but drops them from the manifest (so a later restore gives back the folder as it
//     was, and the mirror keeps every byte it ever had). In both modes, when the removed files are
//     more than `maxDeleteRatio` of the mirror's files, the local folder looks fresh or partial
//     (a container that wrote a template before anything was restored) and the push is a
//     `conflict` unless --allow-shrink: a fresh file would otherwise overwrite the good one of the
//     same name, or a wipe would be propagated. Files missing locally are never restored one by
//     one: restore happens only into an empty folder.
//  6. Mirror without a manifest but with files (made by hand or by another tool): local empty →
//     restore everything found (and write a manifest describing it; in a mirror an unfinished
//     first push of persist left, only what its shards list: see FIRST_PUSH_MARKER in
//     manifest.ts); local has files → a `push`
//     that compares same-size files by content, copies only those that differ, never deletes, and
//     writes the manifest. Mirror files the local folder lacks stay in the mirror, unlisted.
//  7. Otherwise a `push` when files were added, changed or removed since the manifest; nothing
//     when only mtimes moved (content and mode equal). A manifest whose shards are newer than
//     its root (an interrupted push) also gets a `push`, which finishes the root.
//
// The manifest is sharded (manifest.ts) so that a push writes in proportion to what
// changed: the changed files, the shards listing them, and the small root. A push copies a
// shard's files before writing that shard, writes the root after every shard, and deletes
// removed files only after the root: a crash at any point leaves shards that list no file the
// mirror lacks; at worst the shard of the files being copied still holds their previous hashes,
// which the next push copies again and a restore notices (restored as found, see restore).
// Files move several at a time (store/limit.ts: 16 through the S3 API, 3 through a mount),
// one function per file (pushPath, restorePath); a shard is written when the last of its files is
// in, and a failure lets the copies under way finish and starts none, so the rules above hold.
//
// Only regular files are synced: symlinks and special files are skipped with a warning (see
// tree.ts); unreadable files and folders and names that are not UTF-8 are reported and left out,
// their mirror copies kept (trust.ts). What is pushed is a state that existed: each file is read
// stably (stable.ts) and a SQLite database is pushed as an online snapshot, its `-wal`, `-shm` and
// `-journal` never pushed on their own (sqlite-sync.ts); the push checks what it stored
// (push-run.ts), so a folder that changed again meanwhile does not fail it.
import { dirname, join } from 'node:path';
import { ActionError, PersistError } from '../../errors.js';
import { addressOf as makeAddress, type Address } from '../../engine/address.js';
import type { ApplyContext, ApplyOutcome, Change, Decision, Facts, FileFate, FileList, PlanOptions, ResourceModule, Seen } from '../../engine/types.js';
import type { Host } from '../../host/types.js';
import { mapLimit, transferConcurrency } from '../../store/limit.js';
import { StoreMissing, type Store, type Transferred } from '../../store/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import { compareWithListing, compareWithManifest, emptyComparison, manifestFilesInScope, type TreeComparison } from './compare.js';
import { ManifestError, ManifestWriter, MANIFEST_NAME, markFirstPush, readManifest, SHARD_DIR_NAME, unfinishedFirstPush, writeManifest, type ManifestEntry, type SyncManifest } from './manifest.js';
import { readSyncState, recordSyncEvent } from './state.js';
import { shardCacheFor, type ShardCache } from './manifest-cache.js';
import { readFolderModes } from './folders.js';
import { sameMtime, syncExcluder, walkTree, type TreeFile, type TreeListing } from './tree.js';
import { listMirror, mirrorKey, storedKey } from './names.js';
import { relativeKey } from '../../store/key-names.js';
import { compareExtras, folderModesDiffer, isHeld, observeTrust, trustWarnings, unreadableNotSaved, type TrustDetail } from './trust.js';
import { PushRun } from './push-run.js';
import { RestoreRun } from './restore-run.js';
import { formatAge, formatBytes, plural, samplePaths } from '../../output/format.js';
import { ensureMachine } from '../../lineage/machine.js';
import { cleanStartAction, lineageFacts, localDigest, observeSyncLineage, recordCleanStart, prepareRestore, recordRestore, SyncGeneration, syncLineageDecision, type SyncLineage } from './generations.js';

export type SyncLocalObserved =
  | { state: 'missing' }
  | { state: 'not-dir'; found: string }
  | {
      state: 'dir';
      /** Regular files after excludes. */
      files: number;
      /** Symlinks and special files left out. */
      skipped: string[];
      /** An interrupted restore left its marker: the folder is partial. */
      restoreIncomplete: boolean;
      /** Folders and files that cannot be read: reported and left out (their mirror copies kept). */
      unreadable?: string[];
      /** SQLite databases found (pushed as snapshots, their sidecars left out). */
      databases?: number;
      /** Databases are present and `sqlite3` is not: they cannot be pushed. */
      sqliteMissing?: boolean;
      /** Stored files `persist verify` found missing or damaged: the push uploads them again. */
      repair?: number;
      /** Manifest shards `persist verify` found damaged in the store: the push writes them again. */
      repairShards?: string[];
    }
  /** The local folder itself cannot be read. */
  | { state: 'unreadable'; reason: string };

export type SyncMirrorObserved =
  /** The mount is not ready: decided at apply time. */
  | { state: 'unknown' }
  | { state: 'missing' }
  | { state: 'not-dir'; found: string }
  | { state: 'invalid-manifest'; message: string }
  | {
      state: 'dir';
      manifest: boolean;
      /** Files in the mirror: the manifest's (in scope of the excludes), else the listing's. */
      files: number;
      pushedAt?: string;
      /** Shards newer than the manifest's root: a push was interrupted; the next push finishes it. */
      interruptedPush?: boolean;
      /** The mirror's files, listed only when the local folder is empty (what a restore brings back). */
      paths?: string[];
    };

export interface SyncObserved {
  local: SyncLocalObserved;
  mirror: SyncMirrorObserved;
  comparison: TreeComparison;
  /** Folder modes differ from those recorded in the mirror (folders.ts). */
  folderModesChanged?: boolean;
  /** Generations (./generations.ts): set once the mirror is known. */
  lineage?: SyncLineage;
}

/** What apply needs besides the summary: the listings and the manifest as read. */
export interface SyncDetail {
  local: TreeListing | null;
  manifest: SyncManifest | null;
  /** The mirror's own listing, read only when it has no manifest. */
  mirrorListing: TreeListing | null;
  /** Files in a mirror without a manifest that an unfinished first push may have left partial: not in `mirrorListing`. */
  unlisted?: string[];
  /** The machine whose first push into a mirror without a manifest was left unfinished. */
  firstPushBy?: string;
  /** Databases, held paths, folder modes and the local trust state (trust.ts). */
  trust?: TrustDetail;
}

function addressOf(sync: ResolvedSync): Address {
  return makeAddress('sync', sync.name);
}

/** A local folder a restore would fill: missing, empty, or half-restored. */
function wouldRestore(local: SyncLocalObserved): boolean {
  return local.state === 'missing' || (local.state === 'dir' && (local.files === 0 || local.restoreIncomplete));
}

/**
 * A restore that moves none of the local files aside into the backups (what watch may run): into a
 * missing or empty folder; into a half-restored one whose files all are the mirror's (one that
 * differs is kept aside; one the mirror lacks stays where it is); into a folder with files only
 * when every one is the mirror's (lineage moves the folder aside when any is not: see
 * syncLineageDecision). A mirror without a manifest can only be compared by size: a same-size file
 * (unverified) would be kept aside too. A file the quick check finds unchanged that a resumed
 * restore finds damaged when it hashes it is persist's own write cut off by a crash, not the agent's.
 */
function restoreKeepsNothingAside({ local, comparison }: SyncObserved): boolean {
  if (local.state === 'missing') return true;
  if (local.state !== 'dir') return false;
  if (local.files === 0 && !local.restoreIncomplete) return true;
  return comparison.changed.length + comparison.unverified.length === 0 && (local.restoreIncomplete || comparison.added.length === 0);
}

async function inspect(sync: ResolvedSync, host: Host, store: Store | null, cache?: ShardCache): Promise<Seen<SyncObserved, SyncDetail>> {
  const isExcluded = syncExcluder(sync.exclude);
  let local: TreeListing | null = null;
  let localObserved!: SyncLocalObserved;
  let trust: TrustDetail | undefined;
  const localInfo = await host.stat(sync.from);
  // The manifest first: where it is (every plan after the first push) the mirror is a folder, and
  // its stat would cost two more requests through the S3 API. The folder modes, which a local
  // folder is compared with once the manifest is there, are read at the same time (one round trip
  // to the store instead of two; read for nothing only before the mirror's first push). Both are
  // asked for before the local walk, which runs without yielding to the event loop: started after
  // it, they would go out only once it ended instead of travelling while it runs.
  const recordedModes = store && localInfo?.type === 'dir' ? readFolderModes(store, sync.relTo) : null;
  const manifestRead = store ? readManifest(store, sync.relTo, cache) : Promise.resolve(null);
  for (const read of [recordedModes, manifestRead]) read?.catch(() => undefined); // awaited below, or not needed
  if (!localInfo) localObserved = { state: 'missing' };
  else if (localInfo.type !== 'dir') localObserved = { state: 'not-dir', found: localInfo.type };
  else {
    try {
      local = await walkTree(host, sync.from, isExcluded);
    } catch (error) {
      localObserved = { state: 'unreadable', reason: (error as NodeJS.ErrnoException).code ?? (error as Error).message };
    }
    if (local) {
      // The manifest (asked for before the walk) says which files are unchanged since their push.
      const pushed = await manifestRead.catch(() => null);
      trust = await observeTrust(host, sync, local, pushed?.files);
      localObserved = { state: 'dir', files: Object.keys(local.files).length, skipped: local.skipped, restoreIncomplete: trust.state.restoring !== undefined, ...trust.observed };
    }
  }

  let mirror: SyncMirrorObserved;
  let manifest: SyncManifest | null = null;
  let mirrorListing: TreeListing | null = null;
  let unlisted: string[] = [];
  let firstPushBy: string | undefined;
  let comparison = emptyComparison();
  let folderModesChanged = false;
  try {
    manifest = await manifestRead;
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    return { state: { local: localObserved, mirror: { state: 'invalid-manifest', message: error.message }, comparison }, detail: { local, manifest: null, mirrorListing: null, ...(trust ? { trust } : {}) } };
  }
  const mirrorInfo = store && !manifest ? await store.stat(sync.relTo) : null;
  if (!store) mirror = { state: 'unknown' };
  else if (!manifest && !mirrorInfo) {
    mirror = { state: 'missing' };
    if (local) comparison = compareWithListing(local.files, {});
  } else if (mirrorInfo && mirrorInfo.type !== 'dir') mirror = { state: 'not-dir', found: mirrorInfo.type };
  else {
    if (manifest) {
      const inScope = manifestFilesInScope(manifest, isExcluded);
      mirror = { state: 'dir', manifest: true, files: inScope.length, pushedAt: manifest.pushedAt };
      if (wouldRestore(localObserved)) mirror.paths = [...inScope].sort();
      if (manifest.storage.version === 2 && manifest.storage.interrupted.length > 0) mirror.interruptedPush = true;
      if (local) comparison = await compareWithManifest(host, sync.from, local.files, manifest, isExcluded, await compareExtras(host, sync, trust!, manifest));
      if (trust && recordedModes) folderModesChanged = folderModesDiffer(await recordedModes, trust);
    } else {
      mirrorListing = await listMirror(store!, sync);
      const unfinished = await unfinishedFirstPush(store!, sync.relTo);
      if (unfinished) ({ listing: mirrorListing, unlisted } = trustedPart(mirrorListing, unfinished.files));
      firstPushBy = unfinished?.machine;
      mirror = { state: 'dir', manifest: false, files: Object.keys(mirrorListing.files).length };
      if (wouldRestore(localObserved)) mirror.paths = Object.keys(mirrorListing.files).sort();
      if (local) comparison = compareWithListing(local.files, mirrorListing.files);
    }
  }
  const state: SyncObserved = { local: localObserved, mirror, comparison };
  if (folderModesChanged) state.folderModesChanged = true;
  return { state, detail: { local, manifest, mirrorListing, ...(unlisted.length > 0 ? { unlisted } : {}), ...(firstPushBy ? { firstPushBy } : {}), ...(trust ? { trust } : {}) } };
}

/**
 * A mirror an unfinished first push of persist left: only the files its shards list are known
 * whole (manifest.ts, FIRST_PUSH_MARKER); the others are left out, as absent, and named.
 */
function trustedPart(listing: TreeListing, listed: Record<string, ManifestEntry>): { listing: TreeListing; unlisted: string[] } {
  const files: TreeListing['files'] = {};
  const unlisted: string[] = [];
  for (const [path, file] of Object.entries(listing.files)) {
    const entry = listed[path];
    if (entry && entry.size === file.size) files[path] = { size: entry.size, mtimeMs: entry.mtimeMs, mode: entry.mode };
    else unlisted.push(path);
  }
  return { listing: { ...listing, files }, unlisted };
}

/**
 * Which files a push may write in place (WriteOptions.inPlace): those under keys that hold no
 * object and that no manifest lists. With a manifest and `delete: true` a key it does not list
 * holds nothing (a removed file is moved into the history, never left unlisted; with
 * `delete: false` it stays in the mirror). Without a manifest, the keys the listing showed.
 */
function inPlaceWriter(sync: ResolvedSync, detail: SyncDetail): (path: string) => boolean {
  const { manifest, mirrorListing } = detail;
  if (manifest) return sync.delete ? (path) => manifest.files[path] === undefined : () => false;
  const unlisted = new Set(detail.unlisted);
  return (path) => mirrorListing?.files[path] === undefined && !unlisted.has(path);
}

// --- diff (pure) ---

function skippedWarnings(local: SyncLocalObserved): string[] | undefined {
  if (local.state !== 'dir') return undefined;
  const warnings = trustWarnings(local);
  if (local.skipped.length > 0) warnings.unshift(`${plural(local.skipped.length, 'symlink or special file')} not synced (only regular files are): ${samplePaths(local.skipped)}`);
  return warnings.length > 0 ? warnings : undefined;
}


function conflict(sync: ResolvedSync, message: string, fix: string, overrideFlag?: string): Decision {
  return {
    address: addressOf(sync),
    kind: 'sync',
    action: 'conflict',
    phase: 'push',
    reason: message,
    changes: [],
    conflict: overrideFlag ? { message, fix, overrideFlag } : { message, fix },
  };
}

function restoreAction(sync: ResolvedSync, observed: SyncObserved, reason: string, changes: Change[]): Decision {
  const action: Decision = { address: addressOf(sync), kind: 'sync', action: 'restore', phase: 'restore', reason, changes };
  const warnings = skippedWarnings(observed.local);
  if (warnings) action.warnings = warnings;
  return action;
}

function pushAction(sync: ResolvedSync, observed: SyncObserved, reason: string, changes: Change[]): Decision {
  const action: Decision = { address: addressOf(sync), kind: 'sync', action: 'push', phase: 'push', reason, changes };
  const warnings = skippedWarnings(observed.local);
  if (warnings) action.warnings = warnings;
  return action;
}

function describeLocal(sync: ResolvedSync, local: SyncLocalObserved): string {
  if (local.state === 'missing') return `${sync.from} does not exist`;
  if (local.state === 'dir' && local.restoreIncomplete) return `${sync.from} was left half-restored by an interrupted restore`;
  return `${sync.from} has no files`;
}

export function diffSync(sync: ResolvedSync, observed: SyncObserved, options: PlanOptions): Decision | null {
  const { local, mirror, comparison } = observed;
  if (local.state === 'not-dir') {
    return conflict(sync, `${sync.from} is a ${local.found}, not a folder`, `Move it aside so that persist can restore the folder there, or change syncs.${sync.name}.from.`);
  }
  if (local.state === 'unreadable') {
    return conflict(sync, `${sync.from} cannot be read (${local.reason})`, `Give the user running persist read and search permission on ${sync.from}.`);
  }
  if (mirror.state === 'not-dir') {
    return conflict(sync, `the mirror ${sync.to} is a ${mirror.found}, not a folder`, `Move it aside in the bucket, or change syncs.${sync.name}.to.`);
  }
  if (mirror.state === 'invalid-manifest') {
    return conflict(
      sync,
      mirror.message,
      `Repair the manifest (${sync.to}/${MANIFEST_NAME} and the shards in ${sync.to}/${SHARD_DIR_NAME}), or remove both: persist then compares the folders by content (never deleting) and writes a new one.`,
    );
  }

  const localFiles = local.state === 'dir' ? local.files : 0;
  const localEmpty = localFiles === 0;
  const restoreIncomplete = local.state === 'dir' && local.restoreIncomplete;
  const mountAddress = `mount.${sync.bucket}`;

  // Lineage: never push over what this machine has not seen (./generations.ts). With the mount
  // not ready only the local records speak (a folder holding another store's data).
  const lineage = localEmpty || restoreIncomplete ? { aside: false } : syncLineageDecision(sync, observed.lineage, mirror.state === 'dir' ? mirror.files : 0, comparison, options);
  if (lineage.decision !== undefined) return lineage.decision;

  if (mirror.state === 'unknown') {
    if (localEmpty || restoreIncomplete) {
      return restoreAction(sync, observed, `${describeLocal(sync, local)}; what the mirror holds is known once ${mountAddress} is up (restored only if it has files)`, [
        { field: 'files', before: String(localFiles), after: 'from the mirror' },
      ]);
    }
    return pushAction(sync, observed, `${plural(localFiles, 'local file')}, compared with the mirror once ${mountAddress} is up (pushed only if changed)`, [
      { field: 'files', before: null, after: `${localFiles} local` },
    ]);
  }

  const mirrorFiles = mirror.state === 'dir' ? mirror.files : 0;
  const pushedAt = mirror.state === 'dir' && mirror.pushedAt ? ` (pushed ${mirror.pushedAt})` : '';

  // Rule 3: restore into an empty or half-restored folder; never push from an empty one.
  if (mirrorFiles > 0 && (localEmpty || restoreIncomplete)) {
    // What a half-restored folder holds that is not the mirror's (the agent wrote it meanwhile) is never overwritten.
    const inTheWay: Change[] = [];
    if (restoreIncomplete && comparison.changed.length > 0) inTheWay.push({ field: 'local', before: `${plural(comparison.changed.length, 'file')} ${comparison.changed.length === 1 ? 'differs' : 'differ'} from the mirror`, after: 'kept aside in the backups' });
    if (restoreIncomplete && comparison.added.length > 0) inTheWay.push({ field: 'local', before: `${plural(comparison.added.length, 'file')} not in the mirror`, after: 'kept (the next push saves them)' });
    const decision = restoreAction(sync, observed, `${describeLocal(sync, local)}; the mirror has ${plural(mirrorFiles, 'file')}${pushedAt}`, [
      { field: 'files', before: String(localFiles), after: String(mirrorFiles) },
      ...inTheWay,
    ]);
    if (mirror.state === 'dir' && mirror.paths) decision.files = [{ fate: 'restore', paths: mirror.paths }];
    return decision;
  }
  if (localEmpty && mirrorFiles === 0 && observed.lineage?.foreign) return cleanStartAction(sync, observed.lineage);
  if (localEmpty) return null;
  if (lineage.allowShrink) options = { ...options, allowShrink: true };

  const hasManifest = mirror.state === 'dir' && mirror.manifest;
  const { added, changed, removed, unverified } = comparison;

  // Rule 5: the shrink guard (both delete modes: see the top of this file). After a rollback the
  // agent has written to since, measured against the generation rolled back to: the files the
  // rollback left out are removed on purpose.
  const since = lineage.shrinkSince;
  const lacking = since ? Math.max(0, removed.length - since.dropped) : removed.length;
  const base = since ? since.files : mirrorFiles;
  if (base > 0 && lacking > 0 && lacking / base > sync.maxDeleteRatio && !options.allowShrink) {
    const percent = Math.round((removed.length / mirrorFiles) * 100);
    const effect = hasManifest && sync.delete ? 'delete them from the mirror' : 'drop them from the manifest';
    const replaced = changed.length + unverified.length;
    const overwrite = replaced > 0 ? ` and replace up to ${plural(replaced, 'mirror file')} with local ones` : '';
    return conflict(
      sync,
      `${sync.from} lacks ${removed.length} of the mirror's ${plural(mirrorFiles, 'file')} (${percent}%, above maxDeleteRatio ${sync.maxDeleteRatio}): a push would ${effect}${overwrite}; the local folder looks fresh or partial`,
      `To get the mirror's files back, move ${sync.from} aside and apply again (it is restored from ${sync.to}). To push the local folder as it is, apply with --allow-shrink.`,
      '--allow-shrink',
    );
  }

  if (!hasManifest && mirrorFiles > 0) {
    // Rule 6: adopt a mirror made without persist.
    const counts = [`${added.length} new`, `${changed.length} of another size`, `${unverified.length} to compare by content`];
    const changes: Change[] = [
      { field: 'manifest', before: null, after: 'written' },
      { field: 'files', before: null, after: counts.join(', ') },
    ];
    if (removed.length > 0) changes.push({ field: 'kept', before: null, after: `${plural(removed.length, 'mirror file')} not in ${sync.from} (left as they are)` });
    const decision = pushAction(sync, observed, `the mirror ${sync.to} has files but no manifest: copying only what differs, deleting nothing`, changes);
    decision.files = fileLists({ add: added, change: changed, compare: unverified });
    return decision;
  }

  const deleting = hasManifest && sync.delete;
  if (added.length + changed.length + removed.length === 0) {
    if (observed.folderModesChanged && mirror.state === 'dir' && mirror.manifest) {
      return pushAction(sync, observed, `folders in ${sync.from} (their modes, or empty ones) differ from those recorded in the mirror`, [{ field: 'folders', before: 'recorded', after: 'local' }]);
    }
    if (mirror.state !== 'dir' || !mirror.interruptedPush) return null;
    // Every shard is truthful already; the root still describes the push before.
    return pushAction(sync, observed, `an interrupted push left ${sync.to}/${MANIFEST_NAME} older than its shards`, [
      { field: 'manifest', before: 'unfinished', after: 'finished' },
    ]);
  }
  const counts: string[] = [];
  if (added.length) counts.push(`${added.length} added`);
  if (changed.length) counts.push(`${changed.length} changed`);
  if (removed.length) counts.push(deleting ? `${removed.length} deleted` : `${removed.length} removed locally (kept in the mirror)`);
  const changes: Change[] = [
    { field: 'files', before: String(mirrorFiles), after: String(localFiles) },
    { field: 'changes', before: null, after: counts.join(', ') },
    { field: 'paths', before: null, after: samplePaths([...added, ...changed, ...removed]) },
  ];
  const damage: string[] = [];
  if (local.state === 'dir' && local.repair) damage.push(`${plural(local.repair, 'stored file')} missing or damaged`);
  if (local.state === 'dir' && local.repairShards?.length) damage.push(`the manifest part${local.repairShards.length === 1 ? '' : 's'} ${local.repairShards.join(', ')} damaged in the store`);
  const repair = damage.length ? `repair: ${damage.join(' and ')} (found by persist verify)` : '';
  // A manifest repair alone lists the files of the damaged part as changed: they are not sent again.
  const onlyManifest = repair !== '' && !(local.state === 'dir' && local.repair) && added.length === 0 && removed.length === 0;
  const reason = onlyManifest ? repair : `${repair ? `${repair}; ` : ''}${mirrorFiles === 0 ? `first push into ${sync.to}` : `${sync.from} changed since the last push${pushedAt}`}`;
  const decision = pushAction(sync, observed, reason, changes);
  if (repair) decision.note = 'repair'; // `~ sync.x  push (repair)`
  decision.files = fileLists({ add: added, change: changed, [deleting ? 'delete' : 'keep']: removed });
  return decision;
}

/** The non-empty lists, in the order plan shows them. */
function fileLists(lists: Partial<Record<FileFate, string[]>>): FileList[] {
  return (Object.entries(lists) as [FileFate, string[]][]).filter(([, paths]) => paths.length > 0).map(([fate, paths]) => ({ fate, paths: [...paths].sort() }));
}

// --- apply ---

function checkAborted(signal: AbortSignal, whatIsSafe: string): void {
  if (signal.aborted) throw new ActionError(`interrupted; ${whatIsSafe}`);
}

async function push(sync: ResolvedSync, { state, detail }: Seen<SyncObserved, SyncDetail>, ctx: ApplyContext): Promise<ApplyOutcome> {
  const { host, signal } = ctx;
  const store = ctx.store(sync.bucket);
  const limit = transferConcurrency(store, host.env());
  const local = detail.local!; // push is only decided for a local folder with files
  const { manifest } = detail;
  const { added, changed, removed, touched, unverified } = state.comparison;
  const toCopy = new Set([...added, ...changed]);
  const toCompare = new Set(unverified);
  const touchedSet = new Set(touched);
  const shardCache = shardCacheFor(host, ctx.env.buckets[sync.bucket]!, sync.relTo);
  const run = new PushRun(host, sync, store, detail.trust, manifest);
  run.inPlace = inPlaceWriter(sync, detail);
  run.shardCache = shardCache;
  // The store still holds the generation this push was planned on, checked before anything is
  // written into the mirror (its refusal says nothing more was written).
  const generation = await SyncGeneration.begin(sync, store, manifest, ctx, state.folderModesChanged === true);
  // Before any file is written in place into a mirror without a root (manifest.ts).
  if (!manifest && toCopy.size > 0) await markFirstPush(store, sync.relTo, host.now().toISOString(), (await ensureMachine(host)).id);
  await run.begin(removed, toCopy, local.files);

  // Paths the push cannot see now but the mirror holds (under an unreadable folder...): kept.
  const paths = [...Object.keys(local.files), ...Object.keys(manifest?.files ?? {}).filter((path) => !(path in local.files) && isHeld(detail.trust, path))];
  const writer = new ManifestWriter(store, sync.relTo, manifest, paths.length, shardCache);
  writer.beforeReplace = generation.beforeShardReplace;

  // Each shard's entries: the unchanged ones now, the copied ones as their copies finish.
  const shards: Record<string, ManifestEntry>[] = Array.from({ length: writer.shardCount }, () => ({}));
  const copiesLeft = new Array<number>(writer.shardCount).fill(0);
  const jobs: { path: string; shard: number }[] = [];
  for (const path of paths) {
    const shard = writer.shardOf(path);
    const file = local.files[path];
    if (!file) shards[shard]![path] = manifest!.files[path]!; // held: see isHeld
    else if (toCompare.has(path) || toCopy.has(path)) {
      jobs.push({ path, shard });
      copiesLeft[shard]! += 1;
    } else {
      const previous = manifest!.files[path]!; // unchanged or touched files are in the manifest
      shards[shard]![path] = touchedSet.has(path) ? { ...previous, mtimeMs: file.mtimeMs } : previous;
    }
  }
  // A shard is written once its files are in the mirror (and without the removed ones, deleted
  // only later), so it never lists a file the mirror lacks. Shards with nothing to copy go first;
  // the copies run shard by shard, `limit` at a time, each shard written when its last copy ends.
  // Unchanged shards are not written.
  await mapLimit(
    copiesLeft.flatMap((left, shard) => (left === 0 ? [shard] : [])),
    limit,
    (shard) => writer.putShard(shard, shards[shard]!),
  );
  jobs.sort((a, b) => a.shard - b.shard);
  const totalBytes = jobs.reduce((sum, job) => sum + local.files[job.path]!.size, 0);
  let done = 0;
  let doneBytes = 0;
  // On a failure no new copy starts and the running ones finish (their shards written when
  // complete): what the next push finds is a mirror whose manifest lists only files it holds.
  await mapLimit(jobs, limit, async ({ path, shard }) => {
    checkAborted(signal, 'the manifest lists only files already in the mirror; the next push carries on');
    const entry = await pushPath(path, local.files[path]!);
    if (entry) shards[shard]![path] = entry;
    done += 1;
    doneBytes += local.files[path]!.size;
    ctx.report(`pushed ${done}/${jobs.length} files (${formatBytes(doneBytes)} of ${formatBytes(totalBytes)})`);
    if ((copiesLeft[shard]! -= 1) === 0) await writer.putShard(shard, shards[shard]!);
  });

  /** One file: its previous version kept by lineage, then read stably (or snapshotted) and uploaded. */
  async function pushPath(path: string, file: TreeFile): Promise<ManifestEntry | null> {
    await generation.beforeOverwrite(path);
    // No manifest: compared by content first.
    return run.pushOne(path, file, toCompare.has(path) ? () => store.hash(mirrorKey(sync, path)) : undefined);
  }

  // The root last, and before any deletion: a crash in between leaves unlisted files in the
  // mirror (harmless), never a manifest that lists files already gone.
  const now = host.now();
  const stamp = await generation.beforeCommit(shards.flatMap((shard) => Object.values(shard)));
  await writer.commit(now.toISOString(), manifest?.restoredAt, stamp);

  const deleting = manifest !== null && sync.delete;
  if (deleting) {
    await mapLimit(
      removed.filter((p) => !run.isCleared(p)),
      limit,
      async (path) => {
        checkAborted(signal, 'the manifest is written; files not deleted yet stay in the mirror, unlisted');
        await generation.retire(path);
      },
    );
    await store.pruneEmptyFolders(sync.relTo, removed.map(relativeKey));
  }
  await recordSyncEvent(host, sync, 'lastPush', now);
  const { copied, bytes, bytesCopiedInStore } = run;
  const notes = await run.finish();
  await generation.after(local.files);

  const inStore = bytesCopiedInStore > 0 ? `, ${formatBytes(bytesCopiedInStore)} of it copied within the store` : '';
  const parts = [`copied ${plural(copied, 'file')} (${formatBytes(bytes)}${inStore})`];
  if (removed.length) parts.push(deleting ? `deleted ${removed.length}` : `kept ${removed.length} removed locally in the mirror`);
  if (run.moved > 0) parts.push(`${plural(run.moved, 'file')} moved during the push (saved as read; the next push takes newer changes)`);
  const outcome: ApplyOutcome = { summary: parts.join(', '), verifiedInStore: true };
  if (notes.length) outcome.notes = notes;
  if (run.notSaved.length) outcome.notSaved = run.notSaved;
  return outcome;
}

/**
 * Mode for a file restored from a mirror without a manifest. Objects written by other tools may
 * show no permission bits through s3fs (no mode metadata); such a file gets 0644 instead.
 */
function usableMode(mode: number): number {
  return (mode & 0o600) === 0o600 ? mode : 0o644;
}

async function restore(sync: ResolvedSync, detail: SyncDetail, ctx: ApplyContext): Promise<ApplyOutcome> {
  const { host, signal } = ctx;
  const store = ctx.store(sync.bucket);
  const limit = transferConcurrency(store, host.env());
  const { manifest } = detail;
  const isExcluded = syncExcluder(sync.exclude);
  // What to restore and with which mode and mtime: the manifest, else the mirror's own listing.
  const sources: [string, TreeFile & { sha256?: string }][] = manifest
    ? manifestFilesInScope(manifest, isExcluded).sort().map((path) => [path, manifest.files[path]!])
    : Object.entries(detail.mirrorListing!.files).map(([path, file]) => [path, { ...file, mode: usableMode(file.mode) }]);

  await host.mkdir(sync.from);
  const restoring = new RestoreRun(host, sync, store, ctx.env.workspace, addressOf(sync));
  const resuming = detail.trust?.state.restoring !== undefined;
  await restoring.begin(resuming, sources.map(([path]) => dirname(path)));
  // Nothing at all in the local folder when it was observed (right before this action): no file
  // of the mirror's can be in the way, and none needs looking at first.
  const local = detail.local;
  const empty = !resuming && (!local || [local.files, local.folders ?? {}].every((entries) => Object.keys(entries).length === 0) && [local.skipped, local.unreadable ?? []].every((list) => list.length === 0));

  const written: Record<string, ManifestEntry> = {};
  const differing: string[] = [];
  const missing: string[] = [];
  let restored = 0;
  let bytes = 0;
  let done = 0;
  const totalBytes = sources.reduce((sum, [, entry]) => sum + entry.size, 0);
  let doneBytes = 0;
  await mapLimit(sources, limit, async ([path, entry]) => {
    checkAborted(signal, `${sync.from} stays marked as half-restored, so the next apply resumes the restore (it never pushes from it)`);
    const result = restoring.later(path, entry) ? null : await restorePath(path, entry); // later: a hard link to a file restored in this run
    done += 1;
    doneBytes += entry.size;
    if (result) {
      restored += 1;
      bytes += result.size;
    }
    ctx.report(`restored ${done}/${sources.length} files (${formatBytes(doneBytes)} of ${formatBytes(totalBytes)})`);
  });

  /** One file: kept when already restored, else downloaded (one request through the S3 API); null when not downloaded. */
  async function restorePath(path: string, entry: TreeFile & { sha256?: string }): Promise<Transferred | null> {
    const source = await storedKey(store, sync, path);
    const target = join(sync.from, path);
    const existing = empty ? null : await host.lstat(target);
    if (existing && existing.type !== 'file') {
      throw new ActionError(`${target} is a ${existing.type} where the mirror has a file; move it aside and apply again`);
    }
    if (existing) {
      // Resuming an interrupted restore: a file with the mirror's content is kept (its content is
      // hashed: files are flushed to disk only at the end, and after a crash a file may have its
      // size with none of its bytes), with the manifest's mode and mtime (a restore killed before
      // its utimes left another). Any other (the agent wrote it meanwhile) is kept aside in the
      // backups, never overwritten.
      if (entry.sha256 && existing.size === entry.size && (await host.hashFile(target)) === entry.sha256) {
        if (existing.mode !== entry.mode) await host.chmod(target, entry.mode);
        if (!sameMtime(existing.mtimeMs, entry.mtimeMs)) await host.utimes(target, entry.mtimeMs);
        written[path] = { size: entry.size, mtimeMs: entry.mtimeMs, sha256: entry.sha256, mode: entry.mode };
        await restoring.kept(path, entry.sha256);
        return null;
      }
      await restoring.keepAside(path);
    }
    let result: Transferred;
    try {
      result = await store.download(source, target, { mode: entry.mode, mtimeMs: entry.mtimeMs, flushLater: true, inPlace: empty });
    } catch (error) {
      // The download says so itself, or (a store that cannot) a stat after the failure does.
      if (error instanceof StoreMissing || !(await store.stat(source))) {
        missing.push(path);
        return null;
      }
      throw error;
    }
    if (entry.sha256 && (result.sha256 !== entry.sha256 || result.size !== entry.size)) {
      // The mirror's bytes are newer than its manifest (an interrupted push, or an edit in the
      // bucket). They are restored as found, stamped with the current time so the next plan sees
      // the difference and pushes a manifest that matches them.
      differing.push(path);
      await host.utimes(target, host.now().getTime());
    }
    written[path] = { size: result.size, mtimeMs: entry.mtimeMs, sha256: result.sha256, mode: entry.mode };
    await restoring.restored(path, result, entry); // holes back; a database: no stale sidecar beside it
    return result;
  }

  const now = host.now();
  if (!manifest) {
    // A mirror made without persist gets its manifest once, describing exactly what was restored,
    // so that the next plan compares against it instead of reading the whole mirror again.
    await writeManifest(store, sync.relTo, written, now.toISOString(), null, shardCacheFor(host, ctx.env.buckets[sync.bucket]!, sync.relTo));
  }
  // Folder modes, then the marker; the lineage record's digest is read while the files are flushed
  // (each file as stat-ed once written: a walk that finds only names it knows makes no lstat).
  const tree = await restoring.finish(() => (manifest ? localDigest(host, sync, restoring.statted) : Promise.resolve('')));
  // Independent records (the marker is gone: a crash in between costs at most a re-check), written together.
  await Promise.all([host.fsync(sync.from), recordSyncEvent(host, sync, 'lastRestore', now), recordRestore(sync, manifest, ctx, tree)]);

  const notes: string[] = [];
  differing.sort();
  missing.sort();
  const aside = await restoring.asideFolder();
  if (aside) notes.push(`${plural(restoring.keptAside.length, 'local file')} that differed from the mirror ${restoring.keptAside.length === 1 ? 'was' : 'were'} kept aside in ${aside}: ${samplePaths(restoring.keptAside.sort())}`);
  // Local files the mirror does not have (written into a half-restored folder) stay: the next push saves them.
  const restoredPaths = new Set(sources.map(([path]) => path));
  const extra = resuming ? Object.keys(detail.local?.files ?? {}).filter((path) => !restoredPaths.has(path)) : [];
  if (extra.length) notes.push(`${plural(extra.length, 'local file')} not in the mirror ${extra.length === 1 ? 'was' : 'were'} kept where ${extra.length === 1 ? 'it is' : 'they are'}: ${samplePaths(extra.sort())}`);
  if (differing.length) notes.push(`${plural(differing.length, 'file')} in the mirror differed from its manifest and were restored as found: ${samplePaths(differing)}`);
  if (missing.length) notes.push(`${plural(missing.length, 'file')} listed in the manifest ${missing.length === 1 ? 'is' : 'are'} missing from the mirror: ${samplePaths(missing)}`);
  const outcome: ApplyOutcome = { summary: `restored ${plural(restored, 'file')} (${formatBytes(bytes)})` };
  if (notes.length) outcome.notes = notes;
  // A mirror ahead of its manifest (a push killed half-way) was restored as found: the manifest
  // that matches it is the next push's to write, not a failure of this restore.
  if (differing.length || extra.length || (manifest?.storage.version === 2 && manifest.storage.interrupted.length > 0)) outcome.followedBy = 'push';
  return outcome;
}

export async function applySync(sync: ResolvedSync, decision: Decision, seen: Seen<SyncObserved, SyncDetail>, ctx: ApplyContext): Promise<ApplyOutcome> {
  try {
    if (decision.action === 'push') return await push(sync, seen, ctx);
    const { local, lineage, comparison } = seen.state;
    if (lineage?.foreign && (local.state !== 'dir' || local.files === 0) && (seen.state.mirror.state !== 'dir' || seen.state.mirror.files === 0)) return await recordCleanStart(sync, ctx);
    const aside = await prepareRestore(sync, lineage, comparison, local.state === 'dir' ? local.files : 0, local.state === 'dir' && local.restoreIncomplete, ctx);
    const outcome = await restore(sync, seen.detail, ctx);
    return aside ? { ...outcome, notes: [aside, ...(outcome.notes ?? [])] } : outcome;
  } catch (error) {
    if (error instanceof PersistError) throw error;
    // e.g. a local file deleted while it was being pushed: the next apply re-checks from scratch.
    throw new ActionError(`${decision.action} failed: ${(error as Error).message}`, { cause: error });
  }
}

async function syncFacts(sync: ResolvedSync, observed: SyncObserved, host: Host): Promise<Facts> {
  const { mirror } = observed;
  if (mirror.state === 'unknown') return { from: sync.from, to: sync.to, mirror: 'unknown (mount not ready)' };
  const local = await readSyncState(host, sync);
  const fromManifest = mirror.state === 'dir' && mirror.manifest;
  return {
    from: sync.from,
    to: sync.to,
    // The last push into the mirror from its manifest (whoever pushed), else this machine's record.
    lastPush: (fromManifest ? mirror.pushedAt : undefined) ?? local.lastPush ?? null,
    lastRestore: local.lastRestore ?? null,
    files: fromManifest ? mirror.files : null,
    // How long ago the mirror was last pushed (what is saved, with its age).
    age: fromManifest && mirror.pushedAt ? formatAge(Date.parse(mirror.pushedAt), host.now()) : null,
    ...lineageFacts(observed.lineage, host.now()),
  };
}

/** Status: a mirror that holds nothing because the local folder has nothing to push yet. */
export function syncUnsaved(sync: ResolvedSync, observed: SyncObserved): string | null {
  const { local, mirror } = observed;
  const mirrorEmpty = mirror.state === 'missing' || (mirror.state === 'dir' && mirror.files === 0);
  // A folder whose files cannot be read holds work all the same (syncUnsavedWork says so).
  const localEmpty = local.state === 'missing' || (local.state === 'dir' && local.files === 0 && !local.unreadable?.length);
  return mirrorEmpty && localEmpty ? `nothing saved yet: ${describeLocal(sync, local)}` : null;
}

/**
 * Paths of the local folder that cannot be read (files an earlier push could not read and that have
 * not changed since, folders): no push takes them, so a plan with nothing to do does not mean they
 * are saved (plan's and apply's notes, status `!!`, shutdown's exit 1).
 */
export function syncUnsavedWork(_sync: ResolvedSync, observed: SyncObserved): string | null {
  const unreadable = observed.local.state === 'dir' ? (observed.local.unreadable ?? []) : [];
  return unreadable.length === 0 ? null : unreadableNotSaved(unreadable);
}

export const syncModule: ResourceModule<ResolvedSync, SyncObserved, SyncDetail> = {
  kind: 'sync',
  // Restores after bundles (a synced folder may lie in a restored repo); pushes before bundle updates.
  phaseRank: { restore: 1, push: 0 },
  resources: (env) => env.syncs,
  needsBucket: (sync) => sync.bucket,
  readiness: null,
  localPaths: (sync) => [sync.from],
  contains: () => [],
  observe: async (sync, ctx) => {
    const ready = ctx.mountReady[sync.bucket] === true;
    const seen = await inspect(sync, ctx.host, ready ? ctx.store(sync.bucket) : null, ready ? shardCacheFor(ctx.host, ctx.env.buckets[sync.bucket]!, sync.relTo) : undefined);
    seen.state.lineage = await observeSyncLineage(sync, ctx, seen.detail.manifest, seen.detail.local?.files ?? null, seen.detail.firstPushBy);
    return seen;
  },
  diff: diffSync,
  apply: applySync,
  // A push never deletes because the source is empty; a restore runs unattended only when it
  // moves nothing of the local folder aside (restoreKeepsNothingAside).
  unattended: (decision, state) => decision.action === 'push' || (decision.action === 'restore' && restoreKeepsNothingAside(state)),
  facts: (sync, observed, ctx) => syncFacts(sync, observed, ctx.host),
  unsaved: syncUnsaved,
  unsavedWork: syncUnsavedWork,
};
