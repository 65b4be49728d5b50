// Walking a synced folder (the local one, or the mirror of a store that is a folder).
//
// Only regular files are synced. Symlinks are skipped (rclone and goofys cannot store them in a
// bucket, and following them could pull in or overwrite data outside the folder), and so are
// sockets, FIFOs and devices; the skipped paths are reported as warnings on the sync's action.
// Empty folders are not synced as such, but the modes of folders are (see folders.ts).
//
// Names are read exactly (`readdirNames`): a name that is not UTF-8 is a path like any other
// (host/names.ts; its key in the store: names.ts). Names of persist's own files are no concern
// here: they live in the mirror only, under keys no user file gets (names.ts). Hard links: the
// names of one file met after the first carry `linkOf` (its first name), so a push stores the
// bytes once and a restore links them again (hardlinks.ts). A file with holes carries `sparse`,
// so a restore keeps it sparse.
//
// The local walk never stops on odd contents: a folder it cannot read is reported (once, with its
// path) and left out. Files under an unreadable folder are never taken as removed.
import type { Host } from '../../host/types.js';
import type { Walk, WalkedFile } from '../../host/walk.js';
import { isSparse } from '../../host/sparse.js';
import type { PathMatcher } from './glob.js';
import { localExcluder } from './names.js';

/** The exclude matcher of a sync's local side: its patterns, and temporaries an interrupted restore left. */
export function syncExcluder(patterns: readonly string[]): PathMatcher {
  return localExcluder(patterns);
}

export interface TreeFile extends WalkedFile {
  /** Status change time (local walks; a store may not know it). */
  ctimeMs?: number;
  /** Another name of the same file (a hard link), met first in the walk: its bytes are stored once, under that name. */
  linkOf?: string;
  /** The file has holes: restored sparse. */
  sparse?: true;
}

export interface TreeListing extends Walk {
  files: Record<string, TreeFile>;
  /** Folders that could not be listed (EACCES...), with the reason: left out, their files kept as they were. */
  unreadable?: { path: string; reason: string }[];
  /** Mode of every folder below the root, by relative path. */
  folders?: Record<string, number>;
}

/**
 * Walk `root` (which must be a directory): regular files not excluded, folders not followed when
 * excluded. `statted`: files this process stat-ed right after it wrote them (a restore,
 * restore-run.ts), by relative path: taken as they are instead of an lstat each. Their entries
 * carry size, mtime and mode only (no hard link, no holes): what the lineage digest reads.
 */
export async function walkTree(host: Host, root: string, isExcluded: PathMatcher, statted?: ReadonlyMap<string, TreeFile>): Promise<TreeListing> {
  const walk: TreeListing = { files: {}, skipped: [], unreadable: [], folders: {} };
  /** First name of each hard-linked file met so far, by device and inode. */
  const firstNames = new Map<string, string>();
  const visit = async (dir: string, prefix: string): Promise<void> => {
    let names: string[];
    try {
      names = await host.readdirNames(dir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // removed while walking
      if (prefix === '') throw error; // the root itself: the caller's problem to report
      walk.unreadable!.push({ path: prefix, reason: code ?? (error as Error).message });
      return;
    }
    for (const name of names) {
      const relativePath = prefix ? `${prefix}/${name}` : name;
      if (isExcluded(relativePath)) continue;
      const known = statted?.get(relativePath);
      if (known) {
        walk.files[relativePath] = known;
        continue;
      }
      const path = dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`; // no path.join: its normalising costs a walk of 100,000 files
      const info = await host.lstat(path);
      if (!info) continue; // removed while walking
      if (info.type === 'file') {
        const file: TreeFile = { size: info.size, mtimeMs: info.mtimeMs, mode: info.mode };
        if (info.ctimeMs !== undefined) file.ctimeMs = info.ctimeMs;
        if ((info.nlink ?? 1) > 1 && info.ino !== undefined) {
          const inode = `${info.dev ?? 0}:${info.ino}`;
          const first = firstNames.get(inode);
          if (first === undefined) firstNames.set(inode, relativePath);
          else file.linkOf = first;
        }
        if (isSparse(info)) file.sparse = true;
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
