// Pushing one file as a state that existed (docs/architecture.md, durability).
//
// A file up to IN_MEMORY_LIMIT is read whole into memory (readWhole, host/quiet.ts: the rule the
// bundle's work-tree snapshot follows too); a larger one is first copied into a private temporary
// file on local disk (the stage). Either way its size, mtime and ctime are taken before and after:
// equal stamps (and a read of that size) mean no write happened during the read, so what was read
// is a state the file had. A file changed lately is
// taken only when no process held it open for writing meanwhile (a writer between two writes of
// one update shows stamps that do not move), see isWhole. Otherwise it is read again,
// at most STABLE_READS times; a file that never settles is not stored (the mirror keeps what it
// had, the push says so, the next push tries again): never a torn copy. Only then is the stage
// uploaded through the Store, and the manifest gets the hash of exactly the bytes that went in.
// A SQLite database is staged by an online snapshot instead (sqlite.ts), never by a byte copy.
import { createHash, randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { stateDir } from '../../host/paths.js';
import type { FileInfo, Host } from '../../host/types.js';
import { INTERRUPTED_READS, isRecent, isWhole, jitter, readWhole, SETTLE_MS, STABLE_READS, type WritersLook } from '../../host/quiet.js';
import type { KnownObject, Store } from '../../store/types.js';
import type { ManifestEntry } from './manifest.js';
import { snapshotSqlite, SqliteUnavailableError } from './sqlite.js';
import { databaseToken } from './sqlite-sync.js';
import { sameStamp, type StatStamp } from './trust-state.js';
import type { TreeFile } from './tree.js';
import { errorMessage } from '../../output/format.js';

/** A private folder on local disk for the stages of one push (`<state>/stage/<random>`, mode 0700). */
export class Stage {
  private counter = 0;
  /** Made once, on first use (files of one push are staged in parallel). */
  private created: Promise<void> | null = null;
  readonly dir: string;
  /** Time this push has spent looking for writers of recent files (see lookForWriters). */
  lookedMs = 0;

  constructor(private readonly host: Host) {
    this.dir = join(stateDir(host.env()), 'stage', `push-${host.pid()}-${randomBytes(4).toString('hex')}`);
  }

  async next(): Promise<string> {
    this.created ??= (async () => {
      await this.host.mkdir(this.dir, { mode: 0o700 });
      await this.host.chmod(this.dir, 0o700);
    })();
    await this.created;
    this.counter += 1;
    return join(this.dir, String(this.counter));
  }

  async cleanup(): Promise<void> {
    if (this.created) await this.host.remove(this.dir);
  }
}

function stampOf(info: FileInfo | TreeFile): StatStamp {
  const stamp: StatStamp = { size: info.size, mtimeMs: info.mtimeMs };
  if (info.ctimeMs !== undefined) stamp.ctimeMs = info.ctimeMs;
  return stamp;
}

function isUnreadable(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM';
}

function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

export type PushedFile =
  /**
   * In the store; `moved`: it changed since the plan looked or while it was read (read again);
   * `etag`: the object's, where the store has them; `copied`: bytes copied within the store.
   */
  | { kind: 'stored'; entry: ManifestEntry; bytes: number; moved: boolean; uploaded: boolean; token?: string; etag?: string; copied?: number }
  /** Changed at every read: not stored. */
  | { kind: 'unsettled' }
  /** Removed (or no longer a file) since the plan. */
  | { kind: 'gone' }
  | { kind: 'unreadable'; reason: string; stamp: StatStamp }
  /** A database that could not be snapshotted (sqlite3 missing, not a readable database...). */
  | { kind: 'failed'; reason: string };

export interface PushFileOptions {
  /** The file is a SQLite database: stage an online snapshot. */
  sqlite: boolean;
  /** The manifest's entry: when the stage has its hash, nothing is uploaded. */
  previous?: ManifestEntry;
  /** Copy only when content differs (a mirror without a manifest): the mirror's hash. */
  mirrorHash?: () => Promise<string>;
  /** The object as this machine last transferred it: a file that only grew sends only its tail. */
  known?: KnownObject;
  /** No object is under the key and nothing trusts it yet: written in place (Store WriteOptions.inPlace). */
  inPlace?: boolean;
}

/**
 * A push's time for looking at writers (a look reads every process's fd table: about a
 * millisecond in a container, more on a crowded host); past it, recent files fall back to
 * waiting for SETTLE_MS of quiet, so that a push right after the agent wrote thousands of files
 * does not pay a look for each.
 */
export const LOOK_BUDGET_MS = 2000;

/** Who holds `source` open for writing, or null when it was quiet for RECENT_MS (nothing to look at). */
async function lookForWriters(host: Host, stage: Stage, source: string, before: FileInfo, readAt: number): Promise<WritersLook | null> {
  if (!isRecent(before, readAt)) return null;
  if (stage.lookedMs >= LOOK_BUDGET_MS) return { writers: [], complete: false };
  const started = host.now().getTime();
  try {
    return await host.writersOf(source);
  } finally {
    stage.lookedMs += host.now().getTime() - started;
  }
}

/** Files up to this size are read into memory and written whole (no stage on disk). */
const IN_MEMORY_LIMIT = 4 * 1024 * 1024;
/** Store.write puts a temporary name beside the key: only for names short enough to leave room for it. */
const IN_MEMORY_NAME_LIMIT = 200;

function failure(error: unknown, before: FileInfo, sqlite: boolean): PushedFile {
  if (error instanceof SqliteUnavailableError) return { kind: 'failed', reason: error.message };
  if (isUnreadable(error)) return { kind: 'unreadable', reason: (error as NodeJS.ErrnoException).code!, stamp: stampOf(before) };
  if (isGone(error)) return { kind: 'gone' };
  if (sqlite) return { kind: 'failed', reason: errorMessage(error) };
  throw error;
}

/**
 * What this machine knows of the object a push replaces (WriteOptions.unchangedSince): the ETag it
 * last transferred, or that there is none (a file no manifest lists and no mirror may hold), so
 * that the write overwrites nothing another machine stored since (store/index.ts, fencedStore).
 */
function unchangedSince(options: PushFileOptions): { unchangedSince?: string | null } {
  if (options.known) return options.known.etag ? { unchangedSince: options.known.etag } : {};
  return options.previous || options.mirrorHash ? {} : { unchangedSince: null };
}

/** Stage `source` stably (or snapshot it), then upload the stage to `key`. */
export async function pushFile(host: Host, store: Store, stage: Stage, source: string, key: string, listed: TreeFile, options: PushFileOptions): Promise<PushedFile> {
  let moved = false;
  let interrupted = 0;
  for (let attempt = 1; attempt <= STABLE_READS; attempt++) {
    const before = await host.lstat(source);
    if (!before || before.type !== 'file') return { kind: 'gone' };
    if (!sameStamp(stampOf(listed), stampOf(before))) moved = true;
    if (!options.sqlite && before.size <= IN_MEMORY_LIMIT && Buffer.byteLength(basename(key)) <= IN_MEMORY_NAME_LIMIT) {
      // Small files: one whole read into memory (host/quiet.ts), written from there. A file that
      // had content (in the manifest, or when the plan listed it) and reads empty was perhaps
      // just truncated by its writer.
      let read: Awaited<ReturnType<typeof readWhole>>;
      try {
        read = await readWhole(host, source, {
          maxBytes: IN_MEMORY_LIMIT,
          look: (info, readAt) => lookForWriters(host, stage, source, info, readAt),
          hadContent: (options.previous?.size ?? 0) > 0 || listed.size > 0,
        });
      } catch (error) {
        return failure(error, before, false);
      }
      if (read === 'gone') return { kind: 'gone' };
      if (read === 'unsettled') return { kind: 'unsettled' };
      if (read === 'too large') {
        // It grew past the limit since its stat: staged instead.
        moved = true;
        if (++interrupted < INTERRUPTED_READS) attempt--;
        continue;
      }
      if (read.retried || !sameStamp(stampOf(listed), stampOf(read.info))) moved = true;
      const { data, info } = read;
      const sha256 = createHash('sha256').update(data).digest('hex');
      const entry: ManifestEntry = { size: data.length, mtimeMs: info.mtimeMs, sha256, mode: info.mode };
      const known = options.previous ? (options.previous.size === data.length && options.previous.mode === info.mode ? options.previous.sha256 : null) : options.mirrorHash ? await options.mirrorHash() : null;
      if (known === sha256) return { kind: 'stored', entry, bytes: 0, moved, uploaded: false };
      await store.write(key, data, { mode: info.mode, ...(options.inPlace ? { inPlace: true } : {}), ...unchangedSince(options) });
      return { kind: 'stored', entry, bytes: data.length, moved, uploaded: true };
    }
    const temp = await stage.next();
    const readAt = host.now().getTime();
    const look = options.sqlite ? null : await lookForWriters(host, stage, source, before, readAt);
    let token: string | undefined;
    try {
      if (options.sqlite) {
        token = await databaseToken(host, source);
        await snapshotSqlite(host, source, temp);
      } else {
        await host.copyFile(source, temp, listed.sparse ? { sparse: true } : undefined);
      }
    } catch (error) {
      await host.remove(temp);
      return failure(error, before, options.sqlite);
    }
    const after = await host.lstat(source);
    const staged = await host.stat(temp);
    // A database's snapshot is consistent whatever the writer did meanwhile: no re-read needed.
    const unmoved = options.sqlite || (after !== null && sameStamp(stampOf(before), stampOf(after)) && staged?.size === before.size);
    if (!unmoved || !(options.sqlite || isWhole(after!, readAt, look))) {
      moved = true;
      await host.remove(temp);
      if (!unmoved && ++interrupted < INTERRUPTED_READS) {
        attempt--;
        await host.sleep(jitter());
      } else if (attempt < STABLE_READS) await host.sleep(SETTLE_MS);
      continue;
    }
    try {
      const mode = before.mode;
      // A size other than the manifest's cannot be the same content: no hash needed to know.
      if ((options.previous && options.previous.size === staged!.size) || options.mirrorHash) {
        const hash = await host.hashFile(temp);
        const known = options.previous?.sha256 ?? (await options.mirrorHash!());
        if (hash === known && staged!.size === (options.previous?.size ?? staged!.size)) {
          const entry: ManifestEntry = { size: staged!.size, mtimeMs: before.mtimeMs, sha256: hash, mode };
          const result: PushedFile = { kind: 'stored', entry, bytes: 0, moved, uploaded: false };
          if (token !== undefined) result.token = token;
          if (!options.previous || options.previous.mode === mode) return result;
        }
      }
      const transfer = { mode, mtimeMs: before.mtimeMs, ...(options.inPlace ? { inPlace: true } : {}), ...unchangedSince(options) };
      const written = options.known && staged!.size > options.known.size ? await store.uploadGrown(temp, key, transfer, options.known) : await store.upload(temp, key, transfer);
      const result: PushedFile = { kind: 'stored', entry: { size: written.size, mtimeMs: before.mtimeMs, sha256: written.sha256, mode }, bytes: written.size, moved, uploaded: true };
      if (token !== undefined) result.token = token;
      if (written.etag !== undefined) result.etag = written.etag;
      if (written.copied) result.copied = written.copied;
      return result;
    } finally {
      await host.remove(temp);
    }
  }
  return { kind: 'unsettled' };
}
