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
): Promise<TreeComparison> {
  const result = emptyComparison();
  for (const [path, file] of Object.entries(local)) {
    const entry = manifest.files[path];
    if (!entry) result.added.push(path);
    else if (entry.size !== file.size) result.changed.push(path);
    else if (sameMtime(entry.mtimeMs, file.mtimeMs) && entry.mode === file.mode) continue;
    else if ((await host.hashFile(join(localRoot, path))) !== entry.sha256 || entry.mode !== file.mode) result.changed.push(path);
    else result.touched.push(path);
  }
  for (const path of Object.keys(manifest.files).sort()) {
    if (!(path in local) && !isExcluded(path)) result.removed.push(path);
  }
  return result;
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

/** Manifest entries still in scope (excludes may have changed since they were pushed). */
export function manifestFilesInScope(manifest: SyncManifest, isExcluded: PathMatcher): string[] {
  return Object.keys(manifest.files)
    .sort()
    .filter((path) => !isExcluded(path));
}
