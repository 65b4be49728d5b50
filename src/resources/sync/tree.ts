// Walking a synced folder (local or mirror) and the names persist reserves inside it.
//
// Only regular files are synced. Symlinks are skipped (rclone and goofys cannot store them in a
// bucket, and following them could pull in or overwrite data outside the folder), and so are
// sockets, FIFOs and devices; the skipped paths are reported as warnings on the sync's action.
// Empty folders are not synced as such, but the modes of folders are (see folders.ts).
//
// The local walk never stops on odd contents: a folder it cannot read is reported (once, with its
// path) and left out, and so is a name that is not valid UTF-8 (the Host speaks strings; such a
// name cannot be opened through it). Files under an unreadable folder are never taken as removed.
import type { Host } from '../../host/types.js';
import type { Walk, WalkedFile } from '../../host/walk.js';
import { isTempName } from '../../store/temp-name.js';
import { createPathMatcher, type PathMatcher } from './glob.js';
import { MANIFEST_NAME, SHARD_DIR_NAME } from './manifest.js';
import { FOLDERS_NAME } from './folders.js';

function isReserved(relativePath: string): boolean {
  if (relativePath === MANIFEST_NAME || relativePath === FOLDERS_NAME) return true;
  if (relativePath === SHARD_DIR_NAME || relativePath.startsWith(`${SHARD_DIR_NAME}/`)) return true;
  const base = relativePath.slice(relativePath.lastIndexOf('/') + 1);
  return isTempName(base); // ours, or the host's writeFileAtomic's
}

/** The exclude matcher of a sync: its patterns plus persist's own files (manifest root and shard folder, folder modes, temporaries). */
export function syncExcluder(patterns: readonly string[]): PathMatcher {
  const user = createPathMatcher(patterns);
  return (relativePath) => isReserved(relativePath) || user(relativePath);
}

export interface TreeFile extends WalkedFile {
  /** Status change time (local walks; a store may not know it). */
  ctimeMs?: number;
}

export interface TreeListing extends Walk {
  files: Record<string, TreeFile>;
  /** Folders that could not be listed (EACCES...), with the reason: left out, their files kept as they were. */
  unreadable?: { path: string; reason: string }[];
  /** Names that are not valid UTF-8 (shown with U+FFFD): left out and reported. */
  badNames?: string[];
  /** Mode of every folder below the root, by relative path. */
  folders?: Record<string, number>;
}

/** A name that readdir could only decode with replacement characters: not UTF-8. */
export function isBadName(name: string): boolean {
  return name.includes('\uFFFD');
}

/** Walk `root` (which must be a directory): regular files not excluded, folders not followed when excluded. */
export async function walkTree(host: Host, root: string, isExcluded: PathMatcher): Promise<TreeListing> {
  const walk: TreeListing = { files: {}, skipped: [], unreadable: [], badNames: [], folders: {} };
  const visit = async (dir: string, prefix: string): Promise<void> => {
    let names: string[];
    try {
      names = await host.readdir(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // removed while walking
      if (prefix === '') throw error; // the root itself: the caller's problem to report
      walk.unreadable!.push({ path: prefix, reason: code ?? (error as Error).message });
      return;
    }
    for (const name of names) {
      const relativePath = prefix ? `${prefix}/${name}` : name;
      if (isBadName(name)) {
        walk.badNames!.push(relativePath);
        continue;
      }
      if (isExcluded(relativePath)) continue;
      const path = dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`; // no path.join: its normalising costs a walk of 100,000 files
      const info = await host.lstat(path);
      if (!info) continue; // removed while walking
      if (info.type === 'file') {
        const file: TreeFile = { size: info.size, mtimeMs: info.mtimeMs, mode: info.mode };
        if (info.ctimeMs !== undefined) file.ctimeMs = info.ctimeMs;
        walk.files[relativePath] = file;
      } else if (info.type === 'dir') {
        walk.folders![relativePath] = info.mode;
        await visit(path, relativePath);
      } else walk.skipped.push(relativePath);
    }
  };
  await visit(root, '');
  return walk;
}

/** Whether `path` lies in (or is) one of the unreadable folders of a listing. */
export function underUnreadable(listing: TreeListing | null, path: string): boolean {
  return (listing?.unreadable ?? []).some((entry) => path === entry.path || path.startsWith(`${entry.path}/`));
}

/**
 * Whether two mtimes are the same for the quick check. Restore sets times through utimes in
 * seconds as a float, which can move the value by a fraction of a millisecond.
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.abs(a - b) < 1;
}
