// Walking a synced folder (local or mirror) and the names persist reserves inside it.
//
// Only regular files are synced. Symlinks are skipped (rclone and goofys cannot store them in a
// bucket, and following them could pull in or overwrite data outside the folder), and so are
// sockets, FIFOs and devices; the skipped paths are reported as warnings on the sync's action.
// Empty folders are not synced either: the mirror is a set of files.
import type { Host } from '../../host/types.js';
import { walkFolder, type Walk, type WalkedFile } from '../../host/walk.js';
import { isTempName } from '../../store/temp-name.js';
import { createPathMatcher, type PathMatcher } from './glob.js';
import { MANIFEST_NAME, SHARD_DIR_NAME } from './manifest.js';

/** Marker left at the top of a local folder while a restore is under way (local disk only). */
export const RESTORE_MARKER_NAME = '.persist-restore-incomplete';

function isReserved(relativePath: string): boolean {
  if (relativePath === MANIFEST_NAME || relativePath === RESTORE_MARKER_NAME) return true;
  if (relativePath === SHARD_DIR_NAME || relativePath.startsWith(`${SHARD_DIR_NAME}/`)) return true;
  const base = relativePath.slice(relativePath.lastIndexOf('/') + 1);
  return isTempName(base); // ours, or the host's writeFileAtomic's
}

/** The exclude matcher of a sync: its patterns plus persist's own files (manifest root and shard folder, marker, temporaries). */
export function syncExcluder(patterns: readonly string[]): PathMatcher {
  const user = createPathMatcher(patterns);
  return (relativePath) => isReserved(relativePath) || user(relativePath);
}

export type TreeFile = WalkedFile;
export type TreeListing = Walk;

/** Walk `root` (which must be a directory): regular files not excluded, folders not followed when excluded. */
export function walkTree(host: Host, root: string, isExcluded: PathMatcher): Promise<TreeListing> {
  return walkFolder(host, root, isExcluded);
}

/**
 * Whether two mtimes are the same for the quick check. Restore sets times through utimes in
 * seconds as a float, which can move the value by a fraction of a millisecond.
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 1;
}
