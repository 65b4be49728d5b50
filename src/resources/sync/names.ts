// Where a synced file lives in the store: under its path's key (store/key-names.ts: a name that is
// not UTF-8 or looks like persist's own is escaped; docs/names.md), so that persist's own files in
// the mirror never meet a user's file of the same name, and every name can be stored.
import { join } from 'node:path';
import { hasRawBytes } from '../../host/names.js';
import { pathOfKey, relativeKey } from '../../store/key-names.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store, StoreListing } from '../../store/types.js';
import { isTempName } from '../../store/temp-name.js';
import { FOLDERS_NAME } from './folders.js';
import { createPathMatcher, type PathMatcher } from './glob.js';
import { MANIFEST_NAME, SHARD_DIR_NAME } from './manifest.js';

/** The store key of a synced file. */
export function mirrorKey(sync: Pick<ResolvedSync, 'relTo'>, path: string): string {
  return join(sync.relTo, relativeKey(path));
}

/**
 * The key holding a synced file's bytes: its key, or, for a mirror pushed before names were
 * escaped, the file's own name when only that exists.
 */
export async function storedKey(store: Store, sync: Pick<ResolvedSync, 'relTo'>, path: string): Promise<string> {
  const key = mirrorKey(sync, path);
  const legacy = join(sync.relTo, path);
  if (legacy === key || hasRawBytes(legacy) || (await store.stat(key))) return key;
  return (await store.stat(legacy)) ? legacy : key;
}

/** persist's own files in a mirror: the manifest root, its shard folder, the folder modes, temporaries. */
function isOwnKey(relativeKeyPath: string): boolean {
  if (relativeKeyPath === MANIFEST_NAME || relativeKeyPath === FOLDERS_NAME) return true;
  if (relativeKeyPath === SHARD_DIR_NAME || relativeKeyPath.startsWith(`${SHARD_DIR_NAME}/`)) return true;
  return isTempName(relativeKeyPath.slice(relativeKeyPath.lastIndexOf('/') + 1));
}

/**
 * A mirror's files as paths (a mirror made without persist, read through its listing): persist's
 * own files left out, keys turned back into names, the sync's excludes applied to the names.
 */
export async function listMirror(store: Store, sync: Pick<ResolvedSync, 'relTo' | 'exclude'>): Promise<StoreListing> {
  const user = createPathMatcher(sync.exclude);
  const listing = await store.list(sync.relTo, (key) => isOwnKey(key) || user(pathOfKey(key)));
  const files: StoreListing['files'] = {};
  for (const key of Object.keys(listing.files)) files[pathOfKey(key)] = listing.files[key]!;
  return { files: Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), skipped: listing.skipped.map(pathOfKey) };
}

/** The local side: the sync's excludes, and the temporaries an interrupted restore left (`.<name>.persist-tmp-<random>`). */
export function localExcluder(patterns: readonly string[]): PathMatcher {
  const user = createPathMatcher(patterns);
  return (relativePath) => isTempName(relativePath.slice(relativePath.lastIndexOf('/') + 1)) || user(relativePath);
}
