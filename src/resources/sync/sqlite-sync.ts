// SQLite databases inside a sync (docs/architecture.md, durability): found by their header,
// their `-wal`/`-shm`/`-journal` taken out of the listing (never pushed, counted or "removed"
// separately: the snapshot holds what they hold), and judged changed by their change token, since
// in WAL mode a commit moves only the `-wal`, not the main file's mtime.
import { delimiter, join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ManifestEntry } from './manifest.js';
import { isSqliteHeader, SQLITE_HEADER_BYTES, SQLITE_SIDECARS, sidecarOf, sqliteChangeToken } from './sqlite.js';
import type { TreeListing } from './tree.js';
import type { TrustState } from './trust-state.js';

/** Smallest SQLite page; a database file is always a whole number of pages. */
const MIN_PAGE = 512;

export interface SqliteInListing {
  /** Relative paths of the databases found. */
  databases: string[];
  /** Relative paths of their sidecars, taken out of the listing. */
  sidecars: string[];
}

/**
 * Find the databases among a local listing's files and take their sidecars out of it (in place).
 * Only files that can be a database (a whole number of 512-byte pages, or with a sidecar beside
 * them) have their header read: a plan of 10,000 ordinary files opens almost none. A file whose
 * header is not a database's (isSqliteHeader), even if it starts with the SQLite magic, is an
 * ordinary file, byte-copied like any other, and the files named like its sidecars too: sqlite3
 * is never run on it, so nothing can touch them.
 */
export async function findDatabases(host: Host, root: string, listing: TreeListing): Promise<SqliteInListing> {
  const files = listing.files;
  const withSidecar = new Set<string>();
  for (const path of Object.keys(files)) {
    const base = sidecarOf(path);
    if (base !== null && base in files) withSidecar.add(base);
  }
  const databases: string[] = [];
  for (const [path, file] of Object.entries(files)) {
    const base = sidecarOf(path);
    if (base !== null && base in files) continue; // a sidecar itself
    const candidate = withSidecar.has(path) || (file.size >= MIN_PAGE && file.size % MIN_PAGE === 0);
    if (!candidate) continue;
    try {
      if (isSqliteHeader(await host.readHead(join(root, path), SQLITE_HEADER_BYTES))) databases.push(path);
    } catch {
      // unreadable or gone: the push reports it
    }
  }
  const sidecars: string[] = [];
  for (const db of databases) {
    for (const suffix of SQLITE_SIDECARS) {
      const sidecar = `${db}${suffix}`;
      if (sidecar in files) {
        delete files[sidecar];
        sidecars.push(sidecar);
      }
    }
  }
  return { databases, sidecars };
}

/** Whether a manifest path is a sidecar of one of the databases (never "removed": it was never the database's content). */
export function isSidecarOf(databases: ReadonlySet<string>, path: string): boolean {
  const base = sidecarOf(path);
  return base !== null && databases.has(base);
}

/**
 * How each database compares with the manifest: `same` when the change token taken before the
 * last pushed snapshot is unchanged and that snapshot is what the manifest lists; else `changed`
 * (only a snapshot can tell whether its content moved: the push takes one and uploads only when
 * its hash differs).
 */
export async function judgeDatabases(
  host: Host,
  root: string,
  databases: readonly string[],
  manifest: Record<string, ManifestEntry> | null,
  trust: TrustState,
): Promise<Map<string, 'same' | 'changed'>> {
  const verdicts = new Map<string, 'same' | 'changed'>();
  for (const path of databases) {
    const entry = manifest?.[path];
    const recorded = trust.sqlite?.[path];
    if (!entry || !recorded || recorded.sha256 !== entry.sha256) {
      verdicts.set(path, 'changed');
      continue;
    }
    const token = await databaseToken(host, join(root, path));
    verdicts.set(path, token === recorded.token ? 'same' : 'changed');
  }
  return verdicts;
}

/**
 * The change token of a database (sqlite.ts), with an empty `-wal` taken as none: a WAL without
 * frames holds nothing, and opening the database (the snapshot's own read-only connection does)
 * creates one.
 */
export async function databaseToken(host: Host, path: string): Promise<string> {
  return (await sqliteChangeToken(host, path)).replace(/ wal:0:[^ ]*$/, ' wal:-');
}

/** The `sqlite3` found on PATH, or null (plan warns, doctor fails, a push reports the databases it could not snapshot). */
export async function findSqlite3(host: Host): Promise<string | null> {
  for (const dir of (host.env().PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'sqlite3');
    if (await host.isExecutable(candidate)) return candidate;
  }
  return null;
}
