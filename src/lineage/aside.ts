// Moving local data aside into persist's backups before it is replaced (a restore over files this
// machine never pushed, a rollback), and copying a folder exactly (detach, and a move across file
// systems): regular files with their mode and mtime, every folder with its mode (empty ones too),
// symlinks as symlinks; each copied file checked by sha256 before anything is removed.
import { basename, dirname, join } from 'node:path';
import { PersistError } from '../errors.js';
import { backupDir } from '../host/paths.js';
import type { Host } from '../host/types.js';

function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * A free path `<workspace>/.persist-backups/<address>-<name>-<UTC stamp>` (a counter added when
 * taken) for what `address` keeps of `local`; the backups folder is made first, readable by its
 * owner only (what is kept may hold secrets).
 */
async function newAsidePath(host: Host, workspace: string, address: string, local: string): Promise<string> {
  await host.mkdir(backupDir(workspace), { mode: 0o700 });
  const base = join(backupDir(workspace), `${address}-${basename(local)}-${stamp(host.now())}`);
  let candidate = base;
  for (let n = 2; await host.lstat(candidate); n++) candidate = `${base}-${n}`;
  return candidate;
}

/** A new, empty folder in the backups (mode 0700) for what `address` keeps of `local`. */
export async function newAsideFolder(host: Host, workspace: string, address: string, local: string): Promise<string> {
  const folder = await newAsidePath(host, workspace, address, local);
  await host.mkdir(folder, { mode: 0o700 });
  return folder;
}

export interface FolderEntries {
  /** Relative path → mode and mtime of each regular file. */
  files: Record<string, { size: number; mode: number; mtimeMs: number }>;
  /** Relative path → mode of each folder below the root (empty ones included), parents first. */
  folders: Record<string, number>;
  /** Relative path → target of each symlink. */
  links: Record<string, string>;
  /** Sockets, devices, fifos: never copied. */
  skipped: string[];
}

/** Everything under `root`, without following symlinks. */
export async function listEntries(host: Host, root: string): Promise<FolderEntries> {
  const entries: FolderEntries = { files: {}, folders: {}, links: {}, skipped: [] };
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const name of await host.readdir(dir)) {
      const path = prefix ? `${prefix}/${name}` : name;
      const info = await host.lstat(join(dir, name));
      if (!info) continue; // removed while listed
      if (info.type === 'file') entries.files[path] = { size: info.size, mode: info.mode, mtimeMs: info.mtimeMs };
      else if (info.type === 'dir') {
        entries.folders[path] = info.mode;
        await visit(join(dir, name), path);
      } else if (info.type === 'symlink') entries.links[path] = await host.readlink(join(dir, name));
      else entries.skipped.push(path);
    }
  };
  await visit(root, '');
  return entries;
}

export interface CopyResult {
  files: number;
  folders: number;
  links: number;
  bytes: number;
  skipped: string[];
}

/**
 * A mode as a local file or folder can use it: an object a FUSE mount shows without any owner
 * permission (stored by another tool, no mode metadata) gets the default instead.
 */
function usable(mode: number, fallback: number): number {
  return (mode & 0o700) === 0 ? fallback : mode;
}

/**
 * Copy the folder `from` to the new folder `to` exactly (see the top of this file); `to` takes
 * `from`'s mode. Throws, naming the file, when a copy does not read back as the original.
 */
export async function copyExactly(host: Host, from: string, to: string): Promise<CopyResult> {
  const entries = await listEntries(host, from);
  const rootMode = usable((await host.lstat(from))?.mode ?? 0o755, 0o755);
  // Folders are made writable first and get their own mode last (a 0500 folder still takes files).
  await host.mkdir(to, { mode: 0o700 });
  for (const path of Object.keys(entries.folders)) await host.mkdir(join(to, path), { mode: 0o700 });
  let bytes = 0;
  for (const [path, file] of Object.entries(entries.files)) {
    const target = join(to, path);
    await host.copyFile(join(from, path), target);
    await host.chmod(target, usable(file.mode, 0o644));
    await host.utimes(target, file.mtimeMs);
    const [original, copy] = await Promise.all([host.hashFile(join(from, path)), host.hashFile(target)]);
    if (original !== copy) throw new PersistError(`the copy of ${join(from, path)} in ${to} differs from the original; the original is kept`);
    bytes += file.size;
  }
  for (const [path, target] of Object.entries(entries.links)) {
    await host.symlink(target, join(to, path));
    if ((await host.readlink(join(to, path))) !== target) throw new PersistError(`the copy of the symlink ${join(from, path)} in ${to} differs from the original; the original is kept`);
  }
  const deepestFirst = Object.keys(entries.folders).sort((a, b) => b.split('/').length - a.split('/').length);
  for (const path of deepestFirst) await host.chmod(join(to, path), usable(entries.folders[path]!, 0o755));
  await host.chmod(to, rootMode);
  return { files: Object.keys(entries.files).length, folders: Object.keys(entries.folders).length, links: Object.keys(entries.links).length, bytes, skipped: entries.skipped };
}

/** Move `from` to `to` (a new path): one rename, or across file systems an exact copy, then the original removed. */
export async function moveExactly(host: Host, from: string, to: string): Promise<void> {
  await host.mkdir(dirname(to));
  try {
    await host.rename(from, to);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  const info = await host.lstat(from);
  if (info?.type === 'dir') await copyExactly(host, from, to);
  else if (info?.type === 'symlink') await host.symlink(await host.readlink(from), to);
  else {
    await host.copyFile(from, to);
    if (info) {
      await host.chmod(to, info.mode);
      await host.utimes(to, info.mtimeMs);
    }
    if ((await host.hashFile(from)) !== (await host.hashFile(to))) throw new PersistError(`the copy of ${from} in ${to} differs from the original; the original is kept`);
  }
  await host.remove(from);
}

/** Move `local` (a folder) to a new folder in the backups; returns where it went. */
export async function moveAside(host: Host, workspace: string, address: string, local: string): Promise<string> {
  const target = await newAsidePath(host, workspace, address, local);
  await moveExactly(host, local, target);
  return target;
}

/**
 * Move the folder `local` into the backups (moveAside) except the entries `stays` names (a sync's
 * excluded files: not part of the sync, so neither kept aside nor replaced), which end where they
 * were: in `replacement` once it is renamed into place of `local` (a rollback), else in `local`
 * made anew. The whole folder moves first, as one rename (or, across file systems, an exact copy
 * checked before the original goes), so no other file is ever in neither place; the excluded ones
 * then move back, each one rename on the backups' file system (a checked copy across file
 * systems): they are away from `local` only for those few steps, never lost. One already present
 * in `replacement` (a generation that stored it before it was excluded) is left in the backups.
 * Returns where the folder went.
 */
export async function moveAsideExcept(host: Host, workspace: string, address: string, local: string, stays: (path: string) => boolean, replacement?: string): Promise<string> {
  const aside = await moveAside(host, workspace, address, local);
  if (replacement) await host.rename(replacement, local);
  else await host.mkdir(local);
  const entries = await listEntries(host, aside);
  // Parents before their children: an excluded folder moves back whole, with what it holds.
  const paths = [...Object.keys(entries.folders), ...Object.keys(entries.files), ...Object.keys(entries.links), ...entries.skipped].sort();
  const moved: string[] = [];
  for (const path of paths) {
    if (moved.some((folder) => path.startsWith(`${folder}/`))) continue;
    if (!stays(path) || (await host.lstat(join(local, path)))) continue;
    await moveExactly(host, join(aside, path), join(local, path));
    moved.push(path);
  }
  return aside;
}
