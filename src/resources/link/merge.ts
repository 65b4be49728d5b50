// Copy a local directory tree into the mount without ever overwriting what was there: identical
// entries are skipped; where the mount already held something different, the local entry is
// written beside it as `<name>.persist-conflict-<stamp>`. Every file goes to a temporary name first
// and is renamed into place, so a killed copy leaves at worst a temporary file, which the next run
// (same token) removes and redoes. Used by adopt: a bulk pass, catch-up passes for what changed
// meanwhile, then, once the original is in the backup, a verifying pass (sha256 of both sides).
//
// What the adopt itself wrote into the mount (anything not there when it began: `preexisting`) is
// its own copy: when the local file moved on since, that copy is replaced by the newer version, so
// the link shows the newest one, never persist's stale copy with the newest hidden beside it.
//
// Odd contents: names are read as bytes; a name that is not UTF-8 is stored under its escaped key
// (store/key-names.ts: bucket keys are UTF-8) and reported. Names of one hard-linked file stay
// linked where the mount can hold links (the `local` backend); elsewhere (s3fs) each name gets a
// copy, reported. A relative symlink pointing outside the folder would point elsewhere from the
// mount: it is stored as the absolute path it pointed at (reported); one pointing inside works as
// it is. Sparse files keep their holes where the mount can hold them.
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ActionError } from '../../errors.js';
import { isDenied } from './readable.js';
import { hasRawBytes } from '../../host/names.js';
import { isSparse } from '../../host/sparse.js';
import type { FileInfo, Host } from '../../host/types.js';
import { keyName } from '../../store/key-names.js';

export interface MergeOptions {
  /** Time stamp of the adopt, the same on every resume, so conflict names are stable. */
  stamp: string;
  /** The adopt's token: temporary files are `.<name>.persist-partial-<token>`. */
  token: string;
  /** Compare every file by sha256 (and read back each copy before renaming it into place). */
  verify: boolean;
  /** An earlier run may have been killed: remove its temporary files from each directory visited. */
  sweepPartials: boolean;
  /** The folder the source tree stands for (the link's path; the source may be its backup): symlinks are judged from there. */
  origin: string;
  /** Files (relative paths in the mount) that were there before the adopt began; the rest is the adopt's own. Absent: all is someone else's. */
  preexisting?: ReadonlySet<string>;
  /** An earlier pass of this adopt: entries it placed that did not change since are not looked at again. */
  since?: MergeResult;
  /**
   * The link is already in place: the mount is in use. A file of the adopt's own there is replaced
   * by a newer version only while it is exactly as this adopt placed it (`since`), checked again
   * just before the rename; otherwise the newer version goes beside it as a conflict copy.
   */
  live?: boolean;
  signal?: AbortSignal;
  /** Called every so often with the number of files done. */
  progress?: (filesDone: number, bytesDone: number) => void;
  /**
   * Called before a file is placed under a conflict name (`destRel`, relative to the destination;
   * `file` holds its bytes): adopt records the copy in the bucket, so that `persist clean` removes
   * only copies persist made (conflict-records.ts). A copy is never placed unrecorded.
   */
  recordConflict?: (destRel: string, file: string) => Promise<void>;
}

/** A source file's size and times when it was copied: equal now means unchanged since. */
interface Stamp {
  size: number;
  mtimeMs: number;
  ctimeMs?: number;
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
  /** Every entry placed in the mount, by source path: its path in the mount, a file's stamp when placed (and, after a verifying pass, the mount copy's), whether it is a folder. */
  placed: Map<string, { dest: string; stamp?: Stamp; destStamp?: DestStamp; folder?: true }>;
  /** Files whose own earlier copy in the mount was replaced by a newer version. */
  recopied: string[];
  /** Names that are not UTF-8, stored under their escaped key. */
  renamed: { source: string; stored: string }[];
  /** Names of a hard-linked file linked again in the mount, and those that got a copy instead. */
  linksKept: number;
  linksCopied: string[];
  /** Relative symlinks that pointed outside the folder, stored as the absolute path they pointed at. */
  retargeted: { source: string; target: string }[];
}

/** Thrown when the copy is interrupted by the abort signal; the next apply resumes. */
export class MergeInterrupted extends Error {}

/** A file or folder of the source that cannot be read (EACCES, EPERM): adopt.ts says what to do. */
export class UnreadableSource extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`cannot read ${path} (${code})`);
  }
}

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

const CONFLICT_SUFFIX = /^\.persist-conflict-\d{8}T\d{6}Z(-\d+)?$/;

/** An existing conflict copy of persist's (`<name>.persist-conflict-<stamp>`) in `dir` with exactly these bytes, if any. */
async function identicalConflictCopy(host: Host, dir: string, name: string, info: FileInfo, sha256: string): Promise<string | null> {
  for (const entry of await host.readdirNames(dir)) {
    if (!entry.startsWith(name) || !CONFLICT_SUFFIX.test(entry.slice(name.length))) continue;
    const found = await host.lstat(join(dir, entry));
    if (found?.type === 'file' && found.size === info.size && (await host.hashFile(join(dir, entry))) === sha256) return entry;
  }
  return null;
}

const sameSecond = (a: number, b: number) => Math.floor(a / 1000) === Math.floor(b / 1000);
const stampOf = (info: FileInfo): Stamp => ({ size: info.size, mtimeMs: info.mtimeMs, ...(info.ctimeMs !== undefined && { ctimeMs: info.ctimeMs }) });
const sameStamp = (a: Stamp, b: Stamp) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

/** The mount copy's stamp when placed: a write through the link since changes it (ctime, or the inode when replaced). */
interface DestStamp extends Stamp {
  ino?: number;
}
const destStampOf = (info: FileInfo): DestStamp => ({ ...stampOf(info), ...(info.ino !== undefined && { ino: info.ino }) });
const sameDestStamp = (a: DestStamp, info: FileInfo | null) => info !== null && info.type === 'file' && sameStamp(a, stampOf(info)) && a.ino === info.ino;

/** Errors of link(2) that mean "this file system keeps no hard links here". */
const NO_HARD_LINKS = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EPERM', 'EXDEV', 'EMLINK', 'ENOSYS', 'EIO', 'EACCES']);

function emptyResult(since?: MergeResult): MergeResult {
  return {
    files: 0,
    bytes: 0,
    copied: 0,
    conflicts: [...(since?.conflicts ?? [])],
    notCopied: [...(since?.notCopied ?? [])],
    attributeProblems: [...(since?.attributeProblems ?? [])],
    placed: new Map(since?.placed ?? []),
    recopied: [...(since?.recopied ?? [])],
    renamed: [...(since?.renamed ?? [])],
    linksKept: since?.linksKept ?? 0,
    linksCopied: [...(since?.linksCopied ?? [])],
    retargeted: [...(since?.retargeted ?? [])],
  };
}

export async function mergeTree(host: Host, source: string, dest: string, options: MergeOptions): Promise<MergeResult> {
  const result = emptyResult(options.since);
  /** A read of the source: a refusal (EACCES, EPERM) becomes UnreadableSource; `probe` first checks that the source is the one refused. */
  const reading = async <T>(srcPath: string, read: () => Promise<T>, probe = false): Promise<T> => {
    try {
      return await read();
    } catch (error) {
      const code = isDenied(error);
      if (code === null) throw error;
      if (probe && isDenied(await host.readHead(srcPath, 0).then(() => null, (e: unknown) => e)) === null) throw error;
      throw new UnreadableSource(srcPath, code);
    }
  };
  const hashes = new Map<string, string>();
  /** sha256 of a source file (the only paths it is asked for). */
  const hashOf = async (path: string): Promise<string> => {
    let hash = hashes.get(path);
    if (hash === undefined) {
      hash = await reading(path, () => host.hashFile(path));
      hashes.set(path, hash);
    }
    return hash;
  };
  /** Per hard-linked file (device and inode): where its first name was copied to in the mount. */
  const firstCopies = new Map<string, Promise<string | null>>();

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

  /**
   * Copy through a temporary name (sparse stays sparse), read back when verifying, rename over
   * `destPath`. With the link in place (`live`), `destPath` is looked at again just before the
   * rename: if it is no longer what `expected` says (null: absent), the copy is dropped and false
   * returned, so that a write through the link meanwhile is never overwritten.
   */
  const writeCopy = async (srcPath: string, info: FileInfo, destDir: string, candidate: string, destPath: string, expected: DestStamp | null = null, conflict = false): Promise<boolean> => {
    const temp = join(destDir, `.${candidate.slice(0, 150)}${partialSuffix(options.token)}`);
    // copyfile's error does not say which side refused: the source is tried alone.
    await reading(srcPath, () => host.copyFile(srcPath, temp, isSparse(info) ? { sparse: true } : undefined), true);
    await setAttributes(temp, info, true);
    if (options.verify) {
      const copied = await host.hashFile(temp);
      if (copied !== (await hashOf(srcPath))) {
        throw new ActionError(`the copy of ${srcPath} at ${destPath} does not read back the same (sha256 differs)`);
      }
    }
    if (options.live) {
      const now = await host.lstat(destPath);
      if (expected === null ? now !== null : !sameDestStamp(expected, now)) {
        await host.remove(temp);
        return false;
      }
    }
    if (conflict) await options.recordConflict?.(relative(dest, destPath), temp);
    await host.rename(temp, destPath);
    result.copied++;
    return true;
  };

  /** A later name of a hard-linked file: linked to the first name's copy where the mount allows it. */
  const linkToFirst = async (first: string | null, destPath: string, rel: string, conflict: boolean): Promise<boolean> => {
    if (first === null) return false;
    try {
      if (conflict) await options.recordConflict?.(relative(dest, destPath), first);
      await host.link(first, destPath);
      result.linksKept++;
      return true;
    } catch (error) {
      if (!NO_HARD_LINKS.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
      if (!result.linksCopied.includes(rel)) result.linksCopied.push(rel);
      return false;
    }
  };

  const placeFile = async (srcPath: string, info: FileInfo, destDir: string, name: string, rel: string, destRelDir: string): Promise<void> => {
    const inode = (info.nlink ?? 1) > 1 && info.ino !== undefined ? `${info.dev ?? 0}:${info.ino}` : null;
    const earlier = inode === null ? undefined : firstCopies.get(inode);
    let settle: ((path: string | null) => void) | undefined;
    if (inode !== null && earlier === undefined) firstCopies.set(inode, new Promise((resolve) => (settle = resolve)));
    try {
      for (const candidate of candidateNames(name, options.stamp)) {
        const destPath = join(destDir, candidate);
        const destRel = destRelDir ? `${destRelDir}/${candidate}` : candidate;
        const placed = async (inMount?: FileInfo) => {
          // A verifying pass notes the mount copy as placed: with the link in place, only that copy is the adopt's to replace.
          const now = options.verify ? (inMount ?? (await host.lstat(destPath))) : null;
          result.placed.set(rel, { dest: destRel, stamp: stampOf(info), ...(now?.type === 'file' && { destStamp: destStampOf(now) }) });
          if (candidate !== name) result.conflicts.push({ source: rel, stored: destRel });
          settle?.(destPath);
        };
        const existing = await host.lstat(destPath);
        if (existing === null) {
          if (candidate !== name) {
            // A template file present at every boot: an identical conflict copy stored by an
            // earlier adopt (another stamp) already holds these bytes; no new copy each time.
            const copy = await identicalConflictCopy(host, destDir, name, info, await hashOf(srcPath));
            if (copy) {
              result.placed.set(rel, { dest: destRelDir ? `${destRelDir}/${copy}` : copy, stamp: stampOf(info) });
              result.conflicts.push({ source: rel, stored: destRelDir ? `${destRelDir}/${copy}` : copy });
              settle?.(null);
              return;
            }
          }
          // A leftover of a killed run under this name was removed by the sweep of this directory.
          const conflict = candidate !== name;
          if (!(earlier !== undefined && (await linkToFirst(await earlier, destPath, rel, conflict))) && !(await writeCopy(srcPath, info, destDir, candidate, destPath, null, conflict))) continue;
          await placed();
          return;
        }
        if (existing.type !== 'file') continue;
        if (existing.size === info.size) {
          // The bulk pass trusts size and mtime (to the second: FUSE backends round) so that a resumed
          // copy skips quickly what it already wrote; the verifying pass compares content.
          if ((!options.verify && sameSecond(existing.mtimeMs, info.mtimeMs)) || (await host.hashFile(destPath)) === (await hashOf(srcPath))) {
            // Same bytes; the verifying pass also brings the mode over (a killed run may not have).
            if (options.verify && existing.mode !== info.mode) await setAttributes(destPath, info, false);
            // A later name of a hard-linked file whose copy is not linked to the first name's.
            const first = earlier === undefined ? null : await earlier;
            if (first !== null && (await host.lstat(first))?.ino !== existing.ino && !result.linksCopied.includes(rel)) result.linksCopied.push(rel);
            await placed(options.verify && existing.mode === info.mode ? existing : undefined);
            return;
          }
        }
        // The adopt's own copy of an older version of this file: replaced by the newer one. With
        // the link in place, only while it is exactly as this adopt placed it (nobody wrote it since).
        const ownCopy = options.since?.placed.get(rel);
        const untouched = !options.live || (ownCopy?.dest === destRel && ownCopy.destStamp !== undefined && sameDestStamp(ownCopy.destStamp, existing));
        if (options.preexisting !== undefined && !options.preexisting.has(destRel) && untouched) {
          if (!(await writeCopy(srcPath, info, destDir, candidate, destPath, options.live ? destStampOf(existing) : null, candidate !== name))) continue;
          if (!result.recopied.includes(rel)) result.recopied.push(rel);
          await placed();
          return;
        }
      }
      throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
    } finally {
      settle?.(null);
    }
  };

  /** Where a symlink should point from the mount: as it is, unless it is relative and leads out of the folder. */
  const targetFromMount = (linkTo: string, rel: string): string => {
    if (isAbsolute(linkTo)) return linkTo;
    const pointsAt = resolve(dirname(join(options.origin, rel)), linkTo);
    if (pointsAt === options.origin || pointsAt.startsWith(`${options.origin}/`)) return linkTo;
    if (!result.retargeted.some((r) => r.source === rel)) result.retargeted.push({ source: rel, target: pointsAt });
    return pointsAt;
  };

  const placeSymlink = async (srcPath: string, destDir: string, name: string, rel: string, destRelDir: string): Promise<void> => {
    const linkTo = targetFromMount(await host.readlink(srcPath), rel);
    for (const candidate of candidateNames(name, options.stamp)) {
      const destPath = join(destDir, candidate);
      const destRel = destRelDir ? `${destRelDir}/${candidate}` : candidate;
      const existing = await host.lstat(destPath);
      if (existing === null) {
        try {
          await host.symlink(linkTo, destPath);
        } catch (error) {
          if (!result.notCopied.some((n) => n.source === rel)) result.notCopied.push({ source: rel, reason: `symlink not supported in the mount (${(error as Error).message})` });
          return;
        }
      } else if (existing.type !== 'symlink' || (await host.readlink(destPath)) !== linkTo) {
        continue;
      }
      result.placed.set(rel, { dest: destRel });
      if (candidate !== name) result.conflicts.push({ source: rel, stored: destRel });
      return;
    }
    throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
  };

  const placeDir = async (srcPath: string, info: FileInfo, destDir: string, name: string, rel: string, destRelDir: string): Promise<void> => {
    for (const candidate of candidateNames(name, options.stamp)) {
      const destPath = join(destDir, candidate);
      const destRel = destRelDir ? `${destRelDir}/${candidate}` : candidate;
      const existing = await host.lstat(destPath);
      if (existing !== null && existing.type !== 'dir') continue;
      if (existing === null) {
        // Owner rwx while we fill it; a read-only directory gets its own mode once filled.
        await host.mkdir(destPath, { mode: info.mode | 0o700 });
        await setAttributes(destPath, { ...info, mode: info.mode | 0o700 }, false);
      }
      if (candidate !== name && !result.placed.has(rel)) result.conflicts.push({ source: rel, stored: destRel });
      result.placed.set(rel, { dest: destRel, folder: true });
      await walk(srcPath, destPath, rel, destRel);
      if (existing === null && (info.mode | 0o700) !== info.mode) await setAttributes(destPath, info, false);
      return;
    }
    throw new ActionError(`too many conflicting copies of ${join(destDir, name)} in the mount`);
  };

  /** A name's name in the mount: itself, or its escaped key when it is not UTF-8 (reported). */
  const mountName = (name: string, rel: string, destRelDir: string): string => {
    if (!hasRawBytes(name)) return name;
    const stored = nameInMount(name);
    if (!result.renamed.some((r) => r.source === rel)) result.renamed.push({ source: rel, stored: destRelDir ? `${destRelDir}/${stored}` : stored });
    return stored;
  };

  const walk = async (srcDir: string, destDir: string, relDir: string, destRelDir: string): Promise<void> => {
    if (options.sweepPartials) {
      const suffix = partialSuffix(options.token);
      for (const name of await host.readdirNames(destDir)) {
        if (name.endsWith(suffix)) await host.remove(join(destDir, name));
      }
    }
    const subdirs: { srcPath: string; info: FileInfo; name: string; rel: string }[] = [];
    // Files of one directory go several at a time (a FUSE mount answers each request slowly);
    // subdirectories one after the other, so that the number of open files stays bounded.
    await inParallel(await reading(srcDir, () => host.readdirNames(srcDir)), FILES_IN_FLIGHT, async (name) => {
      if (options.signal?.aborted) throw new MergeInterrupted('interrupted');
      const srcPath = join(srcDir, name);
      const rel = relDir ? `${relDir}/${name}` : name;
      const info = await reading(srcPath, () => host.lstat(srcPath));
      if (info === null) return; // removed while we copy: nothing to keep
      const before = options.since?.placed.get(rel);
      switch (info.type) {
        case 'file':
          result.files++;
          result.bytes += info.size;
          // A catch-up pass: a file unchanged since the earlier pass placed it is left as it is.
          if (!(before?.stamp && sameStamp(before.stamp, stampOf(info)))) await placeFile(srcPath, info, destDir, mountName(name, rel, destRelDir), rel, destRelDir);
          if (result.files % 20 === 0) options.progress?.(result.files, result.bytes);
          break;
        case 'dir':
          subdirs.push({ srcPath, info, name, rel });
          break;
        case 'symlink':
          if (!before) await placeSymlink(srcPath, destDir, mountName(name, rel, destRelDir), rel, destRelDir);
          break;
        default:
          if (!result.notCopied.some((n) => n.source === rel)) result.notCopied.push({ source: rel, reason: 'a socket, FIFO or device file cannot be stored in a bucket' });
      }
    });
    subdirs.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const dir of subdirs) await placeDir(dir.srcPath, dir.info, destDir, mountName(dir.name, dir.rel, destRelDir), dir.rel, destRelDir);
  };

  await host.mkdir(dest);
  await walk(source, dest, '', '');
  return result;
}

/** A source name's name in the mount: itself, or its escaped key when it is not UTF-8. */
function nameInMount(name: string): string {
  return hasRawBytes(name) ? keyName(name) : name;
}

/**
 * What the mount holds where the adopt may write, before it begins: the names in each folder of
 * the mount that matches a folder of the source (one listing per folder, not the whole target).
 * Anything else the adopt later finds there is its own copy.
 */
export async function entriesBefore(host: Host, source: string, dest: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (srcDir: string, destRelDir: string): Promise<void> => {
    const destDir = destRelDir ? join(dest, destRelDir) : dest;
    if ((await host.lstat(destDir))?.type !== 'dir') return;
    const inDest = new Set(await host.readdirNames(destDir));
    for (const name of inDest) found.push(destRelDir ? `${destRelDir}/${name}` : name);
    for (const name of await host.readdirNames(srcDir)) {
      const inMount = nameInMount(name);
      if (!inDest.has(inMount) || (await host.lstat(join(srcDir, name)))?.type !== 'dir') continue;
      await visit(join(srcDir, name), destRelDir ? `${destRelDir}/${inMount}` : inMount);
    }
  };
  await visit(source, '');
  return found;
}

/**
 * Entries of `source` that are not in the mount under the name the merge placed them at, names
 * compared as bytes. What the merge reported as impossible to store (special files, symlinks on
 * rclone) is not missing: it stays in the backup, reported.
 */
export async function missingFromMount(host: Host, source: string, dest: string, result: MergeResult): Promise<string[]> {
  const missing: string[] = [];
  const listings = new Map<string, string[]>();
  const inMount = async (destRel: string): Promise<boolean> => {
    const slash = destRel.lastIndexOf('/');
    const folder = slash < 0 ? '' : destRel.slice(0, slash);
    let names = listings.get(folder);
    if (names === undefined) {
      names = await host.readdirNames(folder ? join(dest, folder) : dest).catch(() => [] as string[]);
      listings.set(folder, names);
    }
    return names.includes(destRel.slice(slash + 1));
  };
  const visit = async (dir: string, relDir: string): Promise<void> => {
    for (const name of await host.readdirNames(dir)) {
      const rel = relDir ? `${relDir}/${name}` : name;
      if (result.notCopied.some((n) => n.source === rel)) continue;
      const placed = result.placed.get(rel);
      if (!placed || !(await inMount(placed.dest))) {
        missing.push(rel);
        continue;
      }
      if (placed.folder) await visit(join(dir, name), rel);
    }
  };
  await visit(source, '');
  return missing;
}
