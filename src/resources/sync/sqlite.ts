// SQLite databases in a sync: detected by their header, pushed as consistent online snapshots made
// with the `sqlite3` CLI (never byte-copied while a writer is busy), restored with no stale sidecar
// beside them. Every effect goes through the Host.
//
// Why `.backup` inside a read transaction (measured on sqlite3 3.40.1, WAL database, busy writer):
// - plain `sqlite3 DB ".backup DEST"` copies 100 pages per step and closes its read transaction
//   between steps; a commit by another process restarts the copy from page 1. Under a writer that
//   commits every few milliseconds a 50 MiB database never finished (killed after 60 s).
// - `BEGIN; <read>; .backup; COMMIT` pins one WAL snapshot for the whole copy: no restart, a
//   page-exact copy of a state that existed (header, page size and WAL mode preserved).
// - `VACUUM INTO` is consistent too (one read transaction) but rebuilds the file: the copy comes
//   out in rollback-journal mode (header bytes 18-19 = 1), so a restored database would silently
//   leave WAL mode. It is kept as the `method: 'vacuum'` alternative.
// Both work on a connection opened read-only (`.open --readonly`), so that a snapshot never
// writes to the agent's database; WAL readers do not block the writer.
//
// `.timeout` comes after `.open`: the shell sets the busy timeout on the connection open at that
// moment, and `.open` replaces it (with `.timeout` first, a locked rollback-journal database failed
// in 18 ms with "database is locked" instead of waiting).
//
// The one thing a read-only connection cannot read is a database with a hot journal: a `-journal`
// left by a writer that crashed mid-transaction, which SQLite must roll back first
// ("attempt to write a readonly database"). Only then is the database opened read-write, which
// rolls it back: SQLite's own recovery, what the application's next open does. SQLite deletes any
// `-journal` with a non-zero first byte that it finds beside a file it opens read-write, even a
// user's file next to a file that only starts with the header, so this open is made only after
// persist checked that the file is a readable database and the journal is a rollback journal
// written for it (hotJournalRefusal); otherwise nothing is touched and the snapshot fails.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host, RunResult } from '../../host/types.js';
import { bytesOfName } from '../../host/names.js';

/** The first 16 bytes of every SQLite 3 database file. */
export const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** Bytes of a database's header (https://www.sqlite.org/fileformat.html#the_database_header); isSqliteHeader needs the first 24. */
export const SQLITE_HEADER_BYTES = 100;

/** The page size a database header (bytes 16-17, big-endian; 1 means 65536) gives. */
function headerPageSize(head: Buffer): number {
  const raw = head.readUInt16BE(16);
  return raw === 1 ? 65536 : raw;
}

/**
 * Whether `head` (the first bytes of a file, at least 24) is the header of a database: the 16-byte
 * magic, then the fields SQLite itself checks before anything else (failing them is "file is not a
 * database"): a page size that is a power of two from 512 to 65536, a read version of at most 2,
 * at least 480 usable bytes per page, payload fractions 64/32/32. A file that only starts with the
 * magic is not a database: it is an ordinary file, and so are the files named like its sidecars.
 */
export function isSqliteHeader(head: Buffer): boolean {
  if (head.length < 24 || !head.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER)) return false;
  const pageSize = headerPageSize(head);
  const powerOfTwo = (pageSize & (pageSize - 1)) === 0;
  return powerOfTwo && pageSize >= 512 && pageSize <= 65536 && head[19]! <= 2 && pageSize - head[20]! >= 480 && head[21] === 64 && head[22] === 32 && head[23] === 32;
}

/** Files SQLite keeps beside a database `X`: `X-wal`, `X-shm`, `X-journal`. */
export const SQLITE_SIDECARS = ['-wal', '-shm', '-journal'] as const;

/** The database a sidecar belongs to (`/a/db.sqlite-wal` → `/a/db.sqlite`), or null for any other path. */
export function sidecarOf(path: string): string | null {
  for (const suffix of SQLITE_SIDECARS) {
    if (path.endsWith(suffix) && path.length > suffix.length && !path.endsWith(`/${suffix}`)) return path.slice(0, -suffix.length);
  }
  return null;
}

/** `sqlite3` could not be started (not installed, or not on PATH). */
export class SqliteUnavailableError extends ActionError {}

export interface SqliteSnapshotOptions {
  /** Bound on each `sqlite3` run (the copy, then the check); default 120 s. */
  timeoutMs?: number;
  /** How long a locked database is waited for (`.timeout`); default 5000 ms. */
  busyTimeoutMs?: number;
  /** Run `PRAGMA integrity_check` on the snapshot (reads every page: cheap for small databases); default true. */
  integrityCheck?: boolean;
  /** `backup` (default): page copy in one read transaction; `vacuum`: `VACUUM INTO` (rebuilt, rollback-journal mode). */
  method?: 'backup' | 'vacuum';
  /** Complete environment for `sqlite3` (default: the host's); tests use it to hide the binary. */
  env?: Record<string, string | undefined>;
  /** The command to run (default `sqlite3`). */
  command?: string;
}

export interface SqliteSnapshot {
  /** Bytes of the snapshot file. */
  size: number;
  /** sha256 hex of exactly the bytes at `dest`. */
  sha256: string;
  method: 'backup' | 'vacuum';
  /** Whether the source could be read through a read-only connection (false: it needed a read-write one). */
  readOnly: boolean;
  /** Whether `PRAGMA integrity_check` of the snapshot answered `ok` (null when not asked). */
  integrity: 'ok' | null;
}

/**
 * A path as a double-quoted argument of a sqlite3 dot-command (the CLI resolves `\\`, `\"`, `\n`
 * and octal `\NNN`): a byte of a name that is not UTF-8 (host/names.ts) goes as its octal escape.
 */
export function dotCommandQuote(path: string): string {
  if (path.includes('\0')) throw new ActionError(`a path with a NUL byte cannot be given to sqlite3: ${JSON.stringify(path)}`);
  const quoted = path.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `"${quoted.replace(/(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g, (raw) => `\\${(raw.charCodeAt(0) - 0xdc00).toString(8)}`)}"`;
}

/** A string as an SQL literal. */
export function sqlQuote(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A `file:` URI for a path (every byte but unreserved ones percent-encoded, a name's raw bytes too), for `?immutable=1` opens. */
export function fileUri(path: string, query: string): string {
  let encoded = '';
  for (const byte of bytesOfName(path)) {
    const char = String.fromCharCode(byte);
    encoded += /[A-Za-z0-9/._~-]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `file:${encoded}?${query}`;
}

function isNotStarted(result: RunResult): boolean {
  return result.exitCode === 127 && /ENOENT/.test(result.stderr);
}

function firstLine(text: string): string {
  return text.trim().split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
}

/**
 * Whether a sqlite3 run failed. The shell goes on after a `.open` that fails (with `-bail` too, exit
 * 0), on an empty in-memory database: a `.backup` of that would be an empty "snapshot". Any error
 * it printed is a failure.
 */
function failed(result: RunResult): boolean {
  return result.exitCode !== 0 || result.timedOut || result.stderr.trim() !== '';
}

function looksNotADatabase(stderr: string): boolean {
  return /file is not a database|database disk image is malformed|\(26\)|\(11\)/i.test(stderr);
}

/** SQLITE_READONLY: what a read-only connection answers when a hot journal needs rolling back. */
function looksReadOnlyRefusal(stderr: string): boolean {
  return /attempt to write a readonly database|\(8\)/i.test(stderr);
}

async function runSqlite(host: Host, script: string, options: SqliteSnapshotOptions): Promise<RunResult> {
  const command = options.command ?? 'sqlite3';
  // -init /dev/null: a user's ~/.sqliterc must not change the output or the settings.
  const result = await host.run(command, ['-init', '/dev/null', '-batch', '-bail'], {
    input: script,
    env: options.env,
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  if (isNotStarted(result)) {
    throw new SqliteUnavailableError(`sqlite3 is not installed (${command} could not be started: ${firstLine(result.stderr)}); install the Debian package sqlite3`);
  }
  return result;
}

function copyScript(source: string, dest: string, method: 'backup' | 'vacuum', readOnly: boolean, busyTimeoutMs: number): string {
  // Read-write through a `mode=rw` URI: never creates the file if it went away meanwhile.
  const open = readOnly ? `.open --readonly ${dotCommandQuote(source)}` : `.open ${dotCommandQuote(fileUri(source, 'mode=rw'))}`;
  // `.timeout` after `.open`: it applies to the connection open at the time (see the top of this file).
  const lines = [open, `.timeout ${busyTimeoutMs}`];
  if (method === 'vacuum') {
    lines.push(`VACUUM INTO ${sqlQuote(dest)};`);
  } else {
    // The read opens the transaction and pins one snapshot; `.backup` then copies that snapshot
    // without ever restarting (see the top of this file).
    lines.push('BEGIN;', 'PRAGMA schema_version;', `.backup main ${dotCommandQuote(dest)}`, 'COMMIT;');
  }
  return `${lines.join('\n')}\n`;
}

async function removeWithSidecars(host: Host, path: string): Promise<void> {
  await host.remove(path);
  for (const suffix of SQLITE_SIDECARS) await host.remove(`${path}${suffix}`);
}

/**
 * A consistent online snapshot of the database at `source` into `dest` (which must not exist):
 * every transaction committed before the call began is in it, and it is a state that existed.
 * A writer's lock is waited for up to `busyTimeoutMs`. `dest` is opened for the check with
 * `immutable=1`, so no `-wal`/`-shm` is ever left beside it. On failure nothing is left at `dest`.
 */
export async function snapshotSqlite(host: Host, source: string, dest: string, options: SqliteSnapshotOptions = {}): Promise<SqliteSnapshot> {
  const method = options.method ?? 'backup';
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (await host.lstat(dest)) throw new ActionError(`cannot snapshot ${source}: ${dest} already exists`);
  const sourceInfo = await host.stat(source);
  if (!sourceInfo) throw new ActionError(`cannot snapshot ${source}: it does not exist`);
  if (sourceInfo.type !== 'file') throw new ActionError(`cannot snapshot ${source}: it is not a regular file`);
  // sqlite3 never opens what is not a database: even a read-only open acts on the files beside it.
  const head = await host.readHead(source, SQLITE_HEADER_BYTES);
  if (!isSqliteHeader(head)) {
    const why = head.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER) ? 'starts with the SQLite header but is not a readable database (its header fields are not a database\'s)' : 'no longer starts with the SQLite header';
    throw new ActionError(`${source} ${why}; it was not snapshotted`);
  }

  let readOnly = true;
  try {
    let result = await runSqlite(host, copyScript(source, dest, method, true, busyTimeoutMs), options);
    const refused = failed(result) && !result.timedOut && !looksNotADatabase(result.stderr) && looksReadOnlyRefusal(result.stderr);
    if (refused && (await host.lstat(`${source}-journal`))) {
      // Perhaps a hot journal, which only a read-write open rolls back (see the top of this file):
      // made only for a real one.
      const refusal = await hotJournalRefusal(host, source, options);
      if (refusal !== null) throw new ActionError(refusal);
      await removeWithSidecars(host, dest);
      readOnly = false;
      result = await runSqlite(host, copyScript(source, dest, method, false, busyTimeoutMs), options);
    }
    if (failed(result)) {
      const detail = result.timedOut ? `timed out after ${options.timeoutMs ?? 120_000} ms` : firstLine(result.stderr) || `sqlite3 exited with ${result.exitCode}`;
      if (looksNotADatabase(result.stderr)) {
        throw new ActionError(`${source} starts with the SQLite header but is not a readable database (${detail}); it was not snapshotted`);
      }
      throw new ActionError(`snapshot of the SQLite database ${source} failed: ${detail}`);
    }
    const written = await host.lstat(dest);
    if (written?.type !== 'file') throw new ActionError(`snapshot of the SQLite database ${source} failed: sqlite3 wrote nothing at ${dest}`);

    let integrity: 'ok' | null = null;
    if (options.integrityCheck ?? true) {
      integrity = await checkIntegrity(host, dest, options);
    }
    // A crashed or killed run could have left a journal beside dest; a finished one does not.
    for (const suffix of SQLITE_SIDECARS) {
      if (await host.lstat(`${dest}${suffix}`)) throw new ActionError(`snapshot of ${source} left ${dest}${suffix} behind; the snapshot is not trusted`);
    }
    const size = (await host.stat(dest))?.size ?? 0;
    const sha256 = await host.hashFile(dest);
    return { size, sha256, method, readOnly, integrity };
  } catch (error) {
    await removeWithSidecars(host, dest);
    throw error;
  }
}

/** The first 8 bytes of a rollback journal's header; the page size it was written for is at bytes 24-27. */
const JOURNAL_MAGIC = Buffer.from('d9d505f920a163d7', 'hex');

/**
 * Why the database at `source` must not be opened read-write to roll back the `-journal` beside
 * it, or null when that is SQLite's recovery of a crashed transaction on this very database:
 * `source` has a database header and its schema reads (opened `immutable=1`, which ignores the
 * journal and takes no lock), and the journal starts with the journal magic and was written for
 * the database's page size. Reads only.
 */
async function hotJournalRefusal(host: Host, source: string, options: SqliteSnapshotOptions): Promise<string | null> {
  const journal = `${source}-journal`;
  const untouched = `persist left it and ${journal} untouched`;
  let head: Buffer;
  let journalHead: Buffer;
  try {
    head = await host.readHead(source, SQLITE_HEADER_BYTES);
    if ((await host.lstat(journal))?.type !== 'file') return `${source} was not snapshotted: sqlite3 would have to roll back ${journal}, which is not a regular file; ${untouched}`;
    journalHead = await host.readHead(journal, 28);
  } catch (error) {
    return `${source} was not snapshotted: sqlite3 would have to roll back ${journal}, and reading them failed (${(error as Error).message}); ${untouched}`;
  }
  if (!isSqliteHeader(head)) return `${source} starts with the SQLite header but is not a readable database (its header fields are not a database's); it was not snapshotted, and ${untouched}`;
  const readable = await runSqlite(host, `.open ${dotCommandQuote(fileUri(source, 'immutable=1'))}\nSELECT count(*) FROM sqlite_schema;\n`, options);
  if (failed(readable)) {
    const detail = readable.timedOut ? 'timed out' : firstLine(readable.stderr) || `sqlite3 exited with ${readable.exitCode}`;
    return `${source} starts with the SQLite header but is not a readable database (${detail}); it was not snapshotted, and ${untouched}`;
  }
  if (journalHead.length < 28 || !journalHead.subarray(0, 8).equals(JOURNAL_MAGIC)) {
    return `${source} was not snapshotted: sqlite3 would have to roll back ${journal}, which is not a SQLite rollback journal (a read-write open would delete it); ${untouched}: move ${journal} away if it is yours`;
  }
  const journalPageSize = journalHead.readUInt32BE(24);
  if (journalPageSize !== headerPageSize(head)) {
    return `${source} was not snapshotted: ${journal} was written for pages of ${journalPageSize} bytes, the database has ${headerPageSize(head)}, so it is not this database's journal; ${untouched}: move ${journal} away if it is not SQLite's`;
  }
  return null;
}

/** `PRAGMA integrity_check` of a database nobody else writes (opened immutable: no locks, no sidecars). */
export async function checkIntegrity(host: Host, path: string, options: Pick<SqliteSnapshotOptions, 'timeoutMs' | 'env' | 'command'> = {}): Promise<'ok'> {
  const result = await runSqlite(host, `.open ${dotCommandQuote(fileUri(path, 'immutable=1'))}\nPRAGMA integrity_check;\n`, options);
  const answer = result.stdout.trim();
  if (failed(result) || answer !== 'ok') {
    const detail = result.timedOut ? 'timed out' : firstLine(failed(result) ? result.stderr : answer) || `exit ${result.exitCode}`;
    throw new ActionError(`the SQLite snapshot ${path} failed its integrity check: ${detail}`);
  }
  return 'ok';
}

/**
 * A token that changes whenever the database's content may have changed, for the push's quick check.
 * The main file's size and mtime are not enough: in WAL mode a commit only appends frames to
 * `-wal`, and the main file is written (its mtime moves) only at a checkpoint. So the token holds:
 * - the main file's size, mtime and header file-change counter (bytes 24-27; bumped by every
 *   rollback-mode commit and by checkpoints);
 * - the `-wal`'s size, mtime and header salts (bytes 0-31). Within one WAL generation frames are
 *   only appended (the size grows); when the WAL restarts from its beginning its salts change,
 *   so even a same-size rewrite within one mtime tick gives another token.
 * `-shm` is an index in shared memory (no content) and `-journal` only exists mid-transaction, so
 * neither is part of it. A missing `-wal` is part of the token too (`wal:-`).
 */
export async function sqliteChangeToken(host: Host, path: string): Promise<string> {
  const part = async (file: string, headerBytes: [number, number]): Promise<string> => {
    const info = await host.stat(file);
    if (!info) return '-';
    let header = '';
    try {
      header = (await host.readHead(file, headerBytes[1])).subarray(headerBytes[0]).toString('hex');
    } catch {
      header = '?'; // vanished between stat and read: the size and mtime still tell
    }
    return `${info.size}:${info.mtimeMs}:${header}`;
  };
  return `db:${await part(path, [24, 28])} wal:${await part(`${path}-wal`, [0, 32])}`;
}

/**
 * Remove the `-wal`, `-journal` and `-shm` beside `dbPath`; returns the paths removed.
 * Call it ONLY right after the database file itself was restored (replaced) and before anything
 * opens it: these files belong to the state that was replaced, and SQLite would apply an old
 * `-wal` or roll back with an old `-journal` over the restored file, corrupting it or bringing old
 * data back. Beside a database that was not just replaced, they hold committed data: never remove them.
 */
export async function removeStaleSidecars(host: Host, dbPath: string): Promise<string[]> {
  const removed: string[] = [];
  for (const suffix of SQLITE_SIDECARS) {
    const sidecar = `${dbPath}${suffix}`;
    if (await host.lstat(sidecar)) {
      await host.remove(sidecar);
      removed.push(sidecar);
    }
  }
  return removed;
}

/** A fresh path for a snapshot inside `dir` (not created). Short on purpose: never past NAME_MAX, whatever the source's name. */
export function snapshotTempPath(dir: string): string {
  return join(dir, `.persist-sqlite-${randomBytes(6).toString('hex')}`);
}
