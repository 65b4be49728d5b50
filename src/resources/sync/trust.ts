// What a sync observes beyond its files so that a push saves a state that existed (docs/architecture.md, durability):
// its SQLite databases (sqlite-sync.ts), files and folders it cannot read, hard links whose
// grouping changed (hardlinks.ts), folder modes (folders.ts), and the local trust state (trust-state.ts). index.ts calls these.
import { join } from 'node:path';
import { timestampTickMs } from '../../host/timestamps.js';
import type { Host } from '../../host/types.js';
import { plural, samplePaths } from '../../output/format.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store } from '../../store/types.js';
import type { CompareExtras } from './compare.js';
import { recordedFolders, sameModes, type FolderModes } from './folders.js';
import { readManifest, type ManifestEntry, type SyncManifest } from './manifest.js';
import type { ShardCache } from './manifest-cache.js';
import { findDatabases, findSqlite3, isSidecarOf, judgeDatabases } from './sqlite-sync.js';
import { readTrustState, sameStamp, type TrustState } from './trust-state.js';
import { sameMtime, underUnreadable, type TreeListing } from './tree.js';
import { shapeChanged } from './hardlinks.js';
import { ActionError } from '../../errors.js';

export interface TrustDetail {
  state: TrustState;
  listing: TreeListing;
  databases: Set<string>;
  sidecars: string[];
  /** Files a push could not read that have not changed since, or that cannot be opened now: left out, their mirror copies kept. */
  unreadableFiles: Set<string>;
  /** Of `unreadableFiles`, those no push recorded yet (found by opening them), with their stamp and why: the push records them. */
  probed: NonNullable<TrustState['unreadable']>;
  /** The local folders the mirror records, by mode (recordedFolders; under unreadable folders, the recorded ones). */
  folderModes: FolderModes;
  observed: { unreadable?: string[]; databases?: number; sqliteMissing?: boolean; repair?: number; repairShards?: string[] };
}

/** `pushed`: the files of the mirror's manifest, when it has one (a file unchanged since its push is not opened). */
export async function observeTrust(host: Host, sync: ResolvedSync, listing: TreeListing, pushed?: Record<string, ManifestEntry>): Promise<TrustDetail> {
  const state = await readTrustState(host, sync);
  const unreadableFiles = new Set<string>();
  for (const [path, recorded] of Object.entries(state.unreadable ?? {})) {
    const file = listing.files[path];
    if (file && sameStamp(file, recorded)) {
      delete listing.files[path];
      unreadableFiles.add(path);
    }
  }
  // A file without every read bit may be one this process cannot open: tried (an open, no read),
  // so that the plan does not count it as pushed. Not tried: files readable by all, files recorded
  // above (their stamp says it), and files the manifest lists with their size, mtime and mode
  // (unchanged since their push: nothing to push; a chmod changes the mode), so that a folder
  // written with umask 077 costs a plan no open per file.
  const probed: TrustDetail['probed'] = {};
  for (const [path, file] of Object.entries(listing.files)) {
    if ((file.mode & 0o444) === 0o444) continue;
    const entry = pushed?.[path];
    if (entry && entry.size === file.size && entry.mode === file.mode && sameMtime(entry.mtimeMs, file.mtimeMs)) continue;
    const reason = await cannotOpen(host, join(sync.from, path));
    if (reason === null) continue;
    probed[path] = { size: file.size, mtimeMs: file.mtimeMs, ...(file.ctimeMs === undefined ? {} : { ctimeMs: file.ctimeMs }), reason };
    delete listing.files[path];
    unreadableFiles.add(path);
  }
  const { databases, sidecars } = await findDatabases(host, sync.from, listing);
  const observed: TrustDetail['observed'] = {};
  const why = (path: string) => (probed[path] ?? state.unreadable![path]!).reason;
  const unreadable = [...(listing.unreadable ?? []).map((entry) => `${entry.path}/ (${entry.reason})`), ...[...unreadableFiles].map((path) => `${path} (${why(path)})`)];
  if (unreadable.length > 0) observed.unreadable = unreadable;
  const manifestOnly = new Set(state.damagedManifest?.paths ?? []);
  const repair = (state.damaged ?? []).filter((path) => path in listing.files && !manifestOnly.has(path)).length;
  if (repair > 0) observed.repair = repair;
  if (state.damagedManifest?.shards.length) observed.repairShards = state.damagedManifest.shards;
  if (databases.length > 0) {
    observed.databases = databases.length;
    if ((await findSqlite3(host)) === null) observed.sqliteMissing = true;
  }
  const folderModes = recordedFolders(listing.folders, listing.files, (path) => !underUnreadable(listing, path) || (listing.unreadable ?? []).some((entry) => entry.path === path));
  return { state, listing, databases: new Set(databases), sidecars, unreadableFiles, probed, folderModes, observed };
}

/** Why `path` cannot be opened for reading (EACCES, EPERM), or null (it can, or it is gone: the push sees that). */
async function cannotOpen(host: Host, path: string): Promise<string | null> {
  try {
    await host.readHead(path, 0);
    return null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? code : null;
  }
}

/** Whether a manifest path missing from the listing is kept as it is (not "removed"). */
export function isHeld(trust: TrustDetail | undefined, path: string): boolean {
  if (!trust) return false;
  return trust.unreadableFiles.has(path) || underUnreadable(trust.listing, path) || isSidecarOf(trust.databases, path);
}

export async function compareExtras(host: Host, sync: ResolvedSync, trust: TrustDetail, manifest: SyncManifest): Promise<CompareExtras> {
  const verdicts = await judgeDatabases(host, sync.from, [...trust.databases], manifest.files, trust.state);
  const pushedAt = Date.parse(manifest.pushedAt);
  const since = Math.min(trust.state.pushStartedMs ?? Number.POSITIVE_INFINITY, Number.isNaN(pushedAt) ? Number.POSITIVE_INFINITY : pushedAt);
  const damaged = new Set(trust.state.damaged ?? []);
  const verdict = (path: string) => (damaged.has(path) || shapeChanged(trust.listing.files[path], manifest.files[path]) ? 'changed' : verdicts.get(path));
  const extras: CompareExtras = { verdict, held: (path) => isHeld(trust, path) };
  if (Number.isFinite(since)) extras.racySinceMs = since - (await timestampTickMs(host, sync.from, Object.values(trust.listing.files)));
  return extras;
}

/** Takes the mirror's recorded folder modes (`recorded`) into `trust` and says whether the local ones differ. */
export function folderModesDiffer(recorded: FolderModes, trust: TrustDetail): boolean {
  for (const [path, mode] of Object.entries(recorded)) {
    if (underUnreadable(trust.listing, path) && !(path in trust.folderModes)) trust.folderModes[path] = mode;
  }
  return !sameModes(trust.folderModes, recorded);
}

/** Paths that cannot be read (`a (EACCES)`, `folder/ (EACCES)`): not in the store, and what to do. */
export function unreadableNotSaved(unreadable: readonly string[]): string {
  const one = unreadable.length === 1;
  return `${plural(unreadable.length, 'path')} cannot be read and ${one ? 'is' : 'are'} not in the store (the mirror keeps any copy it had): ${samplePaths(unreadable)}; make ${one ? 'it' : 'them'} readable, then persist apply saves ${one ? 'it' : 'them'}`;
}

export function trustWarnings(local: { unreadable?: string[]; databases?: number; sqliteMissing?: boolean }): string[] {
  const warnings: string[] = [];
  if (local.unreadable?.length) warnings.push(`${plural(local.unreadable.length, 'path')} cannot be read and ${local.unreadable.length === 1 ? 'is' : 'are'} not synced (the mirror keeps what it had): ${samplePaths(local.unreadable)}`);
  if (local.sqliteMissing) warnings.push(`${plural(local.databases ?? 0, 'SQLite database')} found but sqlite3 is not installed: ${local.databases === 1 ? 'it is' : 'they are'} not pushed (install the Debian package sqlite3)`);
  return warnings;
}

/**
 * The module's own verification of a push: the manifest in the store (its root read back, its
 * shards from the cache when they are the ones just written) lists what was pushed, with the
 * hashes computed from the bytes that went in. The objects are not read back: each write
 * returned only once the store had it (s3fs uploads before close/fsync returns, the S3 API
 * answers after the PUT) or the backend's flush checks it at the store after the action
 * (rclone); see docs/backends.md. A folder that changed again meanwhile does not make this fail
 * (the next push takes the newer state).
 */
export async function verifyPushed(store: Store, mirrorKey: string, uploaded: Record<string, ManifestEntry>, cache?: ShardCache): Promise<void> {
  const manifest = await readManifest(store, mirrorKey, cache);
  const wrong: string[] = [];
  for (const [path, entry] of Object.entries(uploaded)) {
    const listed = manifest?.files[path];
    if (!listed || listed.sha256 !== entry.sha256 || listed.size !== entry.size) wrong.push(path);
  }
  if (wrong.length > 0) throw new ActionError(`verification failed: ${plural(wrong.length, 'pushed file')} not in the store as recorded: ${samplePaths(wrong)}`);
}
