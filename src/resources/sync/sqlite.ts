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
// Both work on a connection opened read-only (`.open --readonly`), which is preferred so that a
// snapshot never writes to the agent's database; WAL readers do not block the writer.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host, RunResult } from '../../host/types.js';
import { bytesOfName } from '../../host/names.js';

/** The first 16 bytes of every SQLite 3 database file. */
export const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** Whether `head` (at least the first 16 bytes of a file) starts with the SQLite 3 header. */
export function isSqliteHeader(head: Buffer): boolean {
  return head.length >= SQLITE_HEADER.length && head.subarray(0, SQLITE_HEADER.length).equals(SQLITE_HEADER);
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

function looksNotADatabase(stderr: string): boolean {
  return /file is not a database|database disk image is malformed|\(26\)|\(11\)/i.test(stderr);
}

function looksReadOnlyRefusal(stderr: string): boolean {
  return /readonly|read-only|unable to open database file|\(8\)|\(14\)/i.test(stderr);
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
  const lines = [`.timeout ${busyTimeoutMs}`, `.open${readOnly ? ' --readonly' : ''} ${dotCommandQuote(source)}`];
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

  let readOnly = true;
  try {
    let result = await runSqlite(host, copyScript(source, dest, method, true, busyTimeoutMs), options);
    if (result.exitCode !== 0 && !result.timedOut && !looksNotADatabase(result.stderr) && looksReadOnlyRefusal(result.stderr)) {
      // A read-only connection cannot roll back a hot journal left by a crashed writer, nor create
      // a missing -shm in some setups: open it read-write, as the application itself would.
      await removeWithSidecars(host, dest);
      readOnly = false;
      result = await runSqlite(host, copyScript(source, dest, method, false, busyTimeoutMs), options);
    }
    if (result.exitCode !== 0 || result.timedOut) {
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

/** `PRAGMA integrity_check` of a database nobody else writes (opened immutable: no locks, no sidecars). */
export async function checkIntegrity(host: Host, path: string, options: Pick<SqliteSnapshotOptions, 'timeoutMs' | 'env' | 'command'> = {}): Promise<'ok'> {
  const result = await runSqlite(host, `.open ${dotCommandQuote(fileUri(path, 'immutable=1'))}\nPRAGMA integrity_check;\n`, options);
  const answer = result.stdout.trim();
  if (result.exitCode !== 0 || answer !== 'ok') {
    const detail = result.timedOut ? 'timed out' : firstLine(result.exitCode !== 0 ? result.stderr : answer) || `exit ${result.exitCode}`;
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
