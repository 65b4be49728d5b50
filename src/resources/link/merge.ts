// Copy a local directory tree into the mount without ever overwriting what is there: identical
// entries are skipped; where the mount already holds something different, the local entry is
// written beside it as `<name>.persist-conflict-<stamp>`. Every file goes to a temporary name first
// and is renamed into place, so a killed copy leaves at worst a temporary file, which the next run
// (same token) removes and redoes. Used by adopt, twice: a bulk pass before the original is moved
// into the backup, then a verifying pass (sha256 of both sides) from the backup.
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { FileInfo, Host } from '../../host/types.js';

export interface MergeOptions {
  /** Time stamp of the adopt, the same on every resume, so conflict names are stable. */
  stamp: string;
  /** The adopt's token: temporary files are `.<name>.persist-partial-<token>`. */
  token: string;
  /** Compare every file by sha256 (and read back each copy before renaming it into place). */
  verify: boolean;
  /** An earlier run may have been killed: remove its temporary files from each directory visited. */
  sweepPartials: boolean;
  signal?: AbortSignal;
  /** Called every so often with the number of files done. */
  progress?: (filesDone: number, bytesDone: number) => void;
}

export interface MergeResult {
  /** Regular files in the source tree. */
  files: number;
  bytes: number;
  /** Files written in this pass. */
  copied: number;
  /** Source paths (relative) whose content lives in the mount under a conflict name. */
  conflicts: { source: string; stored: string }[];
  /** Entries that could not be placed in the mount (special files, symlinks the backend refuses). */
  notCopied: { source: string; reason: string }[];
  /** Attributes (mode, mtime) the backend refused to set, once per kind. */
  attributeProblems: string[];
}

/** Thrown when the copy is interrupted by the abort signal; the next apply resumes. */
export class MergeInterrupted extends Error {}

const MAX_CONFLICT_CANDIDATES = 100;
const FILES_IN_FLIGHT = 8;

/** Run `task` over `items`, at most `limit` at a time; the first failure stops the rest. */
async function inParallel<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  // Wait for every worker (none is left writing in the background), then report the first failure.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failure) throw failure.reason;
}

export function partialSuffix(token: string): string {
  return `.persist-partial-${token}`;
}

function candidateNames(name: string, stamp: string): string[] {
  const names = [name];
  for (let i = 1; i < MAX_CONFLICT_CANDIDATES; i++) {
    names.push(`${name}.persist-conflict-${stamp}${i === 1 ? '' : `-${i}`}`);
  }
  return names;
}

/** An existing `<name>.persist-conflict-*` in `dir` with exactly these bytes, if any. */
async function identicalConflictCopy(host: Host, dir: string, name: string, info: FileInfo, sha256: string): Promise<string | null> {
  const prefix = `${name}.persist-conflict-`;
  for (const entry of await host.readdir(dir)) {
    if (!entry.startsWith(prefix)) continue;
    const found = await host.lstat(join(dir, entry));
    if (found?.type === 'file' && found.size === info.size && (await host.hashFile(join(dir, entry))) === sha256) return entry;
  }
  return null;
}

export async function mergeTree(host: Host, source: string, dest: string, options: MergeOptions): Promise<MergeResult> {
  const result: MergeResult = { files: 0, bytes: 0, copied: 0, conflicts: [], notCopied: [], attributeProblems: [] };
  const hashes = new Map<string, string>();
  const hashOf = async (path: string): Promise<string> => {
    let hash = hashes.get(path);
    if (hash === undefined) {
      hash = await host.hashFile(path);
      hashes.set(path, hash);
    }
    return hash;
  };

  const setAttributes = async (path: string, info: FileInfo, setMtime: boolean): Promise<void> => {
    try {
      await host.chmod(path, info.mode);
    } catch (error) {
      noteAttribute(`file modes could not be set in the mount (${(error as Error).message})`);
    }
    if (!setMtime) return;
    try {
      await host.utimes(path, info.mtimeMs);
    } catch (error) {
      noteAttribute(`modification times could not be set in the mount (${(error as Error).message})`);
    }
  };
  const noteAttribute = (problem: string): void => {
    const kind = problem.slice(0, 20);
    if (!result.attributeProblems.some((p) => p.startsWith(kind))) result.attributeProblems.push(problem);
  };

  const placeFile = async (srcPath: string, info: FileInfo, destDir: string, name: string, rel: string): Promise<void> => {
    for (const candidate of candidateNames(name, options.stamp)) {
      const destPath = join(destDir, candidate);
      const existing = await host.lstat(destPath);
      if (existing === null) {
        if (candidate !== name) {
          // A template file present at every boot: an identical conflict copy stored by an
          // earlier adopt (another stamp) already holds these bytes; no new copy each time.
          const earlier = await identicalConflictCopy(host, destDir, name, info, await hashOf(srcPath));
          if (earlier) {
            result.conflicts.push({ source: rel, stored: join(rel, '..', earlier) });
            return;
          }
        }
        // A leftover of a killed run under this name was removed by the sweep of this directory.
        const temp = join(destDir, `.${candidate.slice(0, 150)}${partialSuffix(options.token)}`);
        await host.copyFile(srcPath, temp);
        await setAttributes(temp, info, true);
        if (options.verify) {
          const copied = await host.hashFile(temp);
          if (copied !== (await hashOf(srcPath))) {
            throw new ActionError(`the copy of ${srcPath} at ${destPath} does not read back the same (sha256 differs)`);
          }
        }
        await host.rename(temp, destPath);
        result.copied++;
        if (candidate !== name) result.conflicts.push({ source: rel, stored: join(rel, '..', candidate) });
        return;
      }
      if (existing.type !== 'file' || existing.size !== info.size) continue;
      // The bulk pass trusts size and mtime (to the second: FUSE backends round) so that a resumed
      // copy skips quickly what it already wrote; the verifying pass compares content.
      if (!options.verify && Math.floor(existing.mtimeMs / 1000) === Math.floor(info.mtimeMs / 1000)) return;
      if ((await host.hashFile(destPath)) === (await hashOf(srcPath))) {
        // Same bytes; the verifying pass also brings the mode over (a killed run may not have).
        if (options.verify && existing.mode !== info.mode) await setAttributes(destPath, info, false);
        if (candidate !== name) result.conflicts.push({ source: rel, stored: join(rel, '..', candidate) });
        return;
      }
    }
    throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
  };

  const placeSymlink = async (srcPath: string, destDir: string, name: string, rel: string): Promise<void> => {
    const linkTo = await host.readlink(srcPath);
    for (const candidate of candidateNames(name, options.stamp)) {
      const destPath = join(destDir, candidate);
      const existing = await host.lstat(destPath);
      if (existing === null) {
        try {
          await host.symlink(linkTo, destPath);
        } catch (error) {
          result.notCopied.push({ source: rel, reason: `symlink not supported in the mount (${(error as Error).message})` });
          return;
        }
        if (candidate !== name) result.conflicts.push({ source: rel, stored: join(rel, '..', candidate) });
        return;
      }
      if (existing.type === 'symlink' && (await host.readlink(destPath)) === linkTo) {
        if (candidate !== name) result.conflicts.push({ source: rel, stored: join(rel, '..', candidate) });
        return;
      }
    }
    throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
  };

  const placeDir = async (srcPath: string, info: FileInfo, destDir: string, name: string, rel: string): Promise<void> => {
    for (const candidate of candidateNames(name, options.stamp)) {
      const destPath = join(destDir, candidate);
      const existing = await host.lstat(destPath);
      if (existing !== null && existing.type !== 'dir') continue;
      if (existing === null) {
        // Owner rwx while we fill it; a read-only directory gets its own mode once filled.
        await host.mkdir(destPath, { mode: info.mode | 0o700 });
        await setAttributes(destPath, { ...info, mode: info.mode | 0o700 }, false);
      }
      if (candidate !== name) result.conflicts.push({ source: rel, stored: join(rel, '..', candidate) });
      await walk(srcPath, destPath, rel);
      if (existing === null && (info.mode | 0o700) !== info.mode) await setAttributes(destPath, info, false);
      return;
    }
    throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
  };

  const walk = async (srcDir: string, destDir: string, relDir: string): Promise<void> => {
    if (options.sweepPartials) {
      const suffix = partialSuffix(options.token);
      for (const name of await host.readdir(destDir)) {
        if (name.endsWith(suffix)) await host.remove(join(destDir, name));
      }
    }
    const subdirs: { srcPath: string; info: FileInfo; name: string; rel: string }[] = [];
    // Files of one directory go several at a time (a FUSE mount answers each request slowly);
    // subdirectories one after the other, so that the number of open files stays bounded.
    await inParallel(await host.readdir(srcDir), FILES_IN_FLIGHT, async (name) => {
      if (options.signal?.aborted) throw new MergeInterrupted('interrupted');
      const srcPath = join(srcDir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const info = await host.lstat(srcPath);
      if (info === null) return; // removed while we copy: nothing to keep
      switch (info.type) {
        case 'file':
          result.files++;
          result.bytes += info.size;
          await placeFile(srcPath, info, destDir, name, rel);
          if (result.files % 20 === 0) options.progress?.(result.files, result.bytes);
          break;
        case 'dir':
          subdirs.push({ srcPath, info, name, rel });
          break;
        case 'symlink':
          await placeSymlink(srcPath, destDir, name, rel);
          break;
        default:
          result.notCopied.push({ source: rel, reason: 'a socket, FIFO or device file cannot be stored in a bucket' });
      }
    });
    subdirs.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const dir of subdirs) await placeDir(dir.srcPath, dir.info, destDir, dir.name, dir.rel);
  };

  await host.mkdir(dest);
  await walk(source, dest, '');
  return result;
}
