// Comparing a local folder with its mirror, without reading the mirror's files.
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import type { PathMatcher } from './glob.js';
import type { SyncManifest } from './manifest.js';
import { sameMtime, type TreeFile } from './tree.js';

export interface TreeComparison {
  /** Local files the mirror does not have. */
  added: string[];
  /** Local files whose content or mode differ from the mirror's. */
  changed: string[];
  /** Mirror files missing locally. */
  removed: string[];
  /** Same content and mode, another mtime: no copy needed, the manifest's mtime is refreshed on the next push. */
  touched: string[];
  /** Mirror without a manifest: same size on both sides, content compared when pushing. */
  unverified: string[];
}

export function emptyComparison(): TreeComparison {
  return { added: [], changed: [], removed: [], touched: [], unverified: [] };
}

/**
 * Against the manifest, rsync's quick check: same size, mtime and mode means unchanged; otherwise
 * the local file is hashed (local disk only) and compared with the manifest's sha256.
 */
export async function compareWithManifest(
  host: Host,
  localRoot: string,
  local: Record<string, TreeFile>,
  manifest: SyncManifest,
  isExcluded: PathMatcher,
  extra: CompareExtras = {},
): Promise<TreeComparison> {
  const result = emptyComparison();
  for (const [path, file] of Object.entries(local)) {
    const entry = manifest.files[path];
    const verdict = extra.verdict?.(path);
    if (!entry) result.added.push(path);
    else if (verdict === 'changed') result.changed.push(path);
    else if (verdict === 'same') continue;
    else if (entry.size !== file.size) result.changed.push(path);
    else if (sameMtime(entry.mtimeMs, file.mtimeMs) && entry.mode === file.mode && !(extra.racySinceMs !== undefined && entry.mtimeMs >= extra.racySinceMs)) continue;
    else if ((await hashOrNull(host, join(localRoot, path))) !== entry.sha256 || entry.mode !== file.mode) result.changed.push(path);
    else if (!sameMtime(entry.mtimeMs, file.mtimeMs)) result.touched.push(path);
  }
  for (const path in manifest.files) {
    if (!(path in local) && !isExcluded(path) && !extra.held?.(path)) result.removed.push(path);
  }
  result.removed.sort();
  return result;
}

export interface CompareExtras {
  /** A verdict made otherwise (a SQLite database: its change token), else the quick check. */
  verdict?: (path: string) => 'same' | 'changed' | undefined;
  /**
   * Racily clean: an entry whose mtime is this recent (the last push's start, less the timestamp
   * tick of the local folder's file system, host/timestamps.ts) may have been rewritten within the
   * same tick after it was read: hashed, not trusted.
   */
  racySinceMs?: number;
  /** Manifest paths missing locally that are not "removed" (under an unreadable folder, unreadable files, sidecars). */
  held?: (path: string) => boolean;
}

/** A file that cannot be read now (gone, unreadable) counts as changed: the push reports it. */
async function hashOrNull(host: Host, path: string): Promise<string | null> {
  try {
    return await host.hashFile(path);
  } catch {
    return null;
  }
}

/** Against a mirror with no manifest (made by hand or another tool): only sizes can be compared from a listing. */
export function compareWithListing(local: Record<string, TreeFile>, mirror: Record<string, TreeFile>): TreeComparison {
  const result = emptyComparison();
  for (const [path, file] of Object.entries(local)) {
    const other = mirror[path];
    if (!other) result.added.push(path);
    else if (other.size !== file.size) result.changed.push(path);
    else result.unverified.push(path);
  }
  for (const path of Object.keys(mirror)) if (!(path in local)) result.removed.push(path);
  return result;
}

/** Manifest entries still in scope (excludes may have changed since they were pushed), in no particular order. */
export function manifestFilesInScope(manifest: SyncManifest, isExcluded: PathMatcher): string[] {
  return Object.keys(manifest.files).filter((path) => !isExcluded(path));
}
