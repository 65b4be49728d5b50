// `persist detach [--target link.x]...`: the way back from a link (seed 000's rollback plan). The
// linked folder becomes a real local folder holding the mount's content: copied exactly beside the
// link (files with modes and times, every folder with its mode, empty ones too, symlinks), every
// file verified by sha256, then the link swapped for the folder (the link renamed aside,
// the folder renamed into place, the old link removed). Nothing in the bucket is deleted. The spec
// still lists the link: remove it there, or the next apply adopts the folder back into the mount.
//
// The agent may go on writing through the link while this copies. So after the first copy, passes
// copy what appeared or changed in the mount meanwhile (and drop what went from it), until one
// finds nothing new or CATCH_UP_PASSES ran; then the swap, from which on writes at the path land
// in the local folder; then one compare of the mount with the local folder copies in what came
// through the link between the last pass and the swap (a file the agent has written locally since
// is not overwritten: it is named as left in the mount, and detach exits 1). The output says how
// many files these passes took. The building folder and the link set aside carry this process's
// pid and are named in a marker in the state folder first: what a killed detach leaves is removed
// by the next run that takes the lock (host/state-leftovers.ts).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { acquireLock } from '../engine/lock.js';
import { PersistError, UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import { buildingPath, markBuilding } from '../host/state-leftovers.js';
import type { FileInfo, Host } from '../host/types.js';
import type { CopyResult } from '../lineage/aside.js';
import { DETACH_CANCELLED, DETACH_QUESTION, detachClosing, detachDone, detachIntro, detachNothing } from '../output/lineage-view.js';
import { plural, showPath } from '../output/format.js';
import type { ResolvedLink } from '../spec/types.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface DetachOptions extends SpecOptions {
  target?: string[];
  autoApprove?: boolean;
}

async function confirm(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question(DETACH_QUESTION)).trim() === 'yes';
  } finally {
    rl.close();
  }
}

/** Catch-up passes before the swap, at most: an agent that never stops writing is caught by the compare after it. */
const CATCH_UP_PASSES = 5;

/**
 * A file as the mount showed it when it was copied: the copy is redone when this changes. Size,
 * mtime and mode only: a FUSE mount's ctime need not be stable between two stats.
 */
function signature(info: FileInfo): string {
  return `${info.size}:${info.mtimeMs}:${info.mode}`;
}

/**
 * A mode as a local file or folder can use it: an object a FUSE mount shows without any owner
 * permission (stored by another tool, no mode metadata) gets the default instead (as aside.ts).
 */
function usable(mode: number, fallback: number): number {
  return (mode & 0o700) === 0 ? fallback : mode;
}

interface Listing {
  files: Map<string, FileInfo>;
  folders: Map<string, number>;
  links: Map<string, string>;
  skipped: string[];
}

/** Everything under `root` without following symlinks; a folder removed while listed is skipped, not an error. */
async function list(host: Host, root: string): Promise<Listing> {
  const listing: Listing = { files: new Map(), folders: new Map(), links: new Map(), skipped: [] };
  const visit = async (dir: string, prefix: string, top: boolean): Promise<void> => {
    let names: string[];
    try {
      names = await host.readdir(dir);
    } catch (error) {
      if (!top && (error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const name of names) {
      const path = prefix ? `${prefix}/${name}` : name;
      const info = await host.lstat(join(dir, name));
      if (!info) continue; // removed while listed
      if (info.type === 'file') listing.files.set(path, info);
      else if (info.type === 'dir') {
        listing.folders.set(path, info.mode);
        await visit(join(dir, name), path, false);
      } else if (info.type === 'symlink') {
        const target = await host.readlink(join(dir, name)).catch(() => null);
        if (target !== null) listing.links.set(path, target);
      } else listing.skipped.push(path);
    }
  };
  await visit(root, '', true);
  return listing;
}

/**
 * Copy the file `from` to `to` (mode, mtime) and check it: true when the copy holds what `from`
 * held from before the copy to after it (same signature, same sha256); false when `from` changed
 * or went meanwhile (the next pass looks again).
 */
async function copyChecked(host: Host, from: string, to: string, info: FileInfo): Promise<boolean> {
  try {
    await host.copyFile(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !(await host.lstat(from))) return false;
    throw error;
  }
  await host.chmod(to, usable(info.mode, 0o644));
  await host.utimes(to, info.mtimeMs);
  const [original, copy] = await Promise.all([host.hashFile(from).catch(() => null), host.hashFile(to)]);
  const after = await host.lstat(from);
  return original === copy && after !== null && signature(after) === signature(info);
}

interface Built {
  /** Mount path -> the mount file's signature when it was copied. */
  files: Map<string, string>;
  /** Mount path -> the copy's signature (size, mtime, mode as written into the local folder). */
  written: Map<string, string>;
  folders: Map<string, number>;
  links: Map<string, string>;
  skipped: string[];
}

/**
 * One pass from the mount into the building folder (nobody else sees it): what is new or changed
 * in the mount since the last pass is copied, what went from it is removed. Returns how many
 * files it copied or found changing (0: the folder holds the mount's content as listed).
 */
async function catchUp(host: Host, from: string, to: string, built: Built): Promise<number> {
  const now = await list(host, from);
  let changed = 0;
  for (const path of [...built.written.keys()]) {
    if (!now.files.has(path)) {
      await host.remove(join(to, path));
      built.files.delete(path);
      built.written.delete(path);
      changed++;
    }
  }
  for (const path of [...built.links.keys()]) {
    if (now.links.get(path) !== built.links.get(path)) {
      await host.remove(join(to, path));
      built.links.delete(path);
    }
  }
  for (const path of [...built.folders.keys()].sort().reverse()) {
    if (!now.folders.has(path)) {
      await host.remove(join(to, path));
      built.folders.delete(path);
    }
  }
  // Folders writable while the passes run; their own modes are applied once, before the swap.
  for (const [path, mode] of now.folders) {
    if (!built.folders.has(path)) {
      if ((await host.lstat(join(to, path)))?.type !== 'dir') {
        await host.remove(join(to, path));
        await host.mkdir(join(to, path), { mode: 0o700 });
      }
    }
    built.folders.set(path, mode);
  }
  for (const [path, info] of now.files) {
    if (built.files.get(path) === signature(info)) continue;
    changed++;
    if ((await host.lstat(join(to, path)))?.type === 'dir') await host.remove(join(to, path));
    const complete = await copyChecked(host, join(from, path), join(to, path), info);
    // Changed while copied: the next pass copies it again (and the compare after the swap still
    // knows the copy there as this detach's own, to replace).
    if (complete) built.files.set(path, signature(info));
    else built.files.delete(path);
    const copy = await host.lstat(join(to, path));
    if (copy?.type === 'file') built.written.set(path, signature(copy));
    else built.written.delete(path);
  }
  for (const [path, target] of now.links) {
    if (built.links.get(path) === target) continue;
    await host.remove(join(to, path));
    await host.symlink(target, join(to, path));
    if ((await host.readlink(join(to, path))) !== target) throw new PersistError(`the copy of the symlink ${join(from, path)} in ${to} differs from the original; the original is kept`);
    built.links.set(path, target);
  }
  built.skipped = now.skipped;
  return changed;
}

/**
 * After the swap, one compare of the mount with the local folder (which the agent may write now):
 * a file written through the link between the last pass and the swap is copied in when the local
 * folder does not have it or still holds the copy this detach made; else (the agent wrote it
 * locally since) it is named as left in the mount. Returns what was copied and what was left.
 */
async function settle(host: Host, from: string, to: string, built: Built): Promise<{ copied: number; left: string[] }> {
  const now = await list(host, from);
  let copied = 0;
  const left: string[] = [];
  for (const [path, mode] of now.folders) {
    if (built.folders.has(path)) continue;
    try {
      const here = await host.lstat(join(to, path));
      if (!here) await host.mkdir(join(to, path), { mode: usable(mode, 0o755) });
      built.folders.set(path, mode);
    } catch {
      // The agent removed its parent meanwhile: the files below are named as left.
    }
  }
  for (const [path, info] of now.files) {
    if (built.files.get(path) === signature(info)) continue;
    const local = join(to, path);
    try {
      const here = await host.lstat(local);
      const ours = built.written.get(path);
      if (here && !(here.type === 'file' && ours !== undefined && signature(here) === ours)) {
        // Written locally since the swap (or never ours): the same bytes need no copy.
        if (here.type === 'file' && (await host.hashFile(local)) === (await host.hashFile(join(from, path)))) continue;
        left.push(path);
        continue;
      }
      // Copied beside it, then renamed over the copy this detach made (or into the free name).
      const temp = `${local}.persist-detach-${host.pid()}-${randomBytes(4).toString('hex')}`;
      try {
        if (!(await copyChecked(host, join(from, path), temp, info))) {
          left.push(path);
          continue;
        }
        await host.rename(temp, local);
      } finally {
        await host.remove(temp);
      }
      built.files.set(path, signature(info));
      copied++;
    } catch {
      left.push(path);
    }
  }
  for (const [path, target] of now.links) {
    if (built.links.get(path) === target) continue;
    const local = join(to, path);
    try {
      if (!(await host.lstat(local))) await host.symlink(target, local);
      else if ((await host.lstat(local))?.type !== 'symlink' || (await host.readlink(local)) !== target) left.push(path);
    } catch {
      left.push(path);
    }
  }
  return { copied, left };
}

interface Detached {
  copied: CopyResult;
  /** Files the passes after the first copy took (written in the mount while it was copied). */
  lastPass: number;
  /** Files the mount holds that the local folder does not (named in the output). */
  left: string[];
}

/**
 * The mount's folder copied exactly beside the link (folders and their modes, empty ones too),
 * then passes copy what was written through the link meanwhile until one finds nothing new (at
 * most CATCH_UP_PASSES), then the swap, then one compare for what came in between.
 */
async function detachOne(host: Host, link: ResolvedLink): Promise<Detached> {
  const building = buildingPath(host, link.path, 'detach');
  const oldLink = buildingPath(host, link.path, 'detach-link');
  const unmark = await markBuilding(host, stateDir(host.env()), [building, oldLink]);
  try {
    const rootMode = usable((await host.lstat(link.target))?.mode ?? 0o755, 0o755);
    await host.mkdir(building, { mode: 0o700 });
    const built: Built = { files: new Map(), written: new Map(), folders: new Map(), links: new Map(), skipped: [] };
    await catchUp(host, link.target, building, built);
    let lastPass = 0;
    for (let pass = 1; pass <= CATCH_UP_PASSES; pass++) {
      const changed = await catchUp(host, link.target, building, built);
      lastPass += changed;
      if (changed === 0) break;
    }
    // Each folder gets its own mode last (a 0500 folder still took files), deepest first.
    const deepestFirst = [...built.folders.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const path of deepestFirst) await host.chmod(join(building, path), usable(built.folders.get(path)!, 0o755));
    await host.chmod(building, rootMode);
    await host.fsync(building);
    // The swap: two renames; from the second one on, what is written at the path lands in the local folder.
    await host.rename(link.path, oldLink);
    try {
      await host.rename(building, link.path);
    } catch (error) {
      await host.rename(oldLink, link.path);
      throw error;
    }
    await host.remove(oldLink);
    const settled = await settle(host, link.target, link.path, built);
    lastPass += settled.copied;
    let bytes = 0;
    for (const path of built.files.keys()) bytes += (await host.lstat(join(link.path, path)))?.size ?? 0;
    const copied: CopyResult = { files: built.files.size, folders: built.folders.size, links: built.links.size, bytes, skipped: built.skipped };
    return { copied, lastPass, left: settled.left };
  } finally {
    await host.remove(building);
    await unmark();
  }
}

export default async function detach(opts: DetachOptions, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const reader = makeHost(io, { readOnly: true });
  const targets = opts.target ?? [];
  const known = Object.keys(env.links).map((name) => `link.${name}`);
  for (const target of targets) {
    if (!known.includes(target)) throw new UsageError(`--target ${target}: no link of that name in environment ${env.environment} (known: ${known.join(', ') || 'none'})`);
  }
  const links = Object.values(env.links).filter((link) => targets.length === 0 || targets.includes(`link.${link.name}`));
  const { observation } = await computePlan(reader, env, { allowShrink: false }, []);
  const todo: ResolvedLink[] = [];
  for (const link of links) {
    const info = await reader.lstat(link.path);
    if (info?.type !== 'symlink' || (await reader.readlink(link.path)) !== link.target) {
      io.out(detachNothing(`link.${link.name}`, link.path, link.target));
      continue;
    }
    if (observation.mountReady[link.bucket] !== true) throw new UsageError(`mount.${link.bucket} is not mounted: run persist apply first (detach copies from the mount)`);
    todo.push(link);
  }
  if (todo.length === 0) return 0;
  io.out(`${header(env, 'detach')}\n\n${todo.map((link) => detachIntro(`link.${link.name}`, link.path, link.target)).join('\n')}\n`);
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('detach needs --auto-approve when not run on a terminal');
    if (!(await confirm())) {
      io.out(DETACH_CANCELLED);
      return 1;
    }
  }
  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'detach' }, 0, 'wait for it to finish, then run this detach again');
  try {
    let code = 0;
    for (const link of todo) {
      const address = `link.${link.name}`;
      const done = await detachOne(host, link);
      io.out(detachDone(address, link.path, done.copied));
      io.out(`${address}: last pass: ${plural(done.lastPass, 'file')} written through the link during the copy ${done.lastPass === 1 ? 'was' : 'were'} copied too\n`);
      if (done.left.length > 0) {
        code = 1;
        io.out(`warning: ${address}: ${plural(done.left.length, 'file')} written through the link just before the swap could not be copied (${link.path} has its own version since, or refused the copy); the mount's version is left in ${link.target}:\n${done.left.map((path) => `  ${showPath(path)}\n`).join('')}`);
      }
    }
    io.out(detachClosing(todo.map((link) => `links.${link.name}`)));
    return code;
  } finally {
    await release();
  }
}
