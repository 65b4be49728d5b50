// The real host: node:fs, /proc/self/mountinfo, child processes, the system clock.
import { chmodSync, closeSync, constants, createReadStream, fchmodSync, lstatSync, open as openCallback, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, utimesSync, writeSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseMountinfo } from './mountinfo.js';
import { fsPath, nameFromBytes, pathString } from './names.js';
import { HOLE_BLOCK } from './sparse.js';
import type { FileInfo, FileType, Host, HostPath, MountEntry, ProbeResult, RunOptions, RunResult } from './types.js';

function fileType(stats: import('node:fs').Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

function info(stats: import('node:fs').Stats): FileInfo {
  return {
    type: fileType(stats),
    size: stats.size,
    mode: stats.mode & 0o7777,
    mtimeMs: stats.mtimeMs,
    ctimeMs: stats.ctimeMs,
    dev: stats.dev,
    ino: stats.ino,
    nlink: stats.nlink,
    blocks: stats.blocks,
    // 0 where the file system does not give it (statx without STATX_BTIME).
    ...(stats.birthtimeMs > 0 ? { birthtimeMs: stats.birthtimeMs } : {}),
  };
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

const MOUNTINFO = '/proc/self/mountinfo';
/** A local write up to this size takes writeSmallFile's path (see writeFile). */
const SMALL_WRITE_LIMIT = 1024 * 1024;

function fuseMountPoints(entries: MountEntry[]): string[] {
  return entries.filter((entry) => entry.fsType === 'fuse' || entry.fsType.startsWith('fuse.')).map((entry) => entry.mountPoint);
}

/** node:crypto when first needed: loading it costs 5 ms, and `validate` never does. */
const crypto = () => process.getBuiltinModule('node:crypto');

const SPARSE_CHUNK = 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(HOLE_BLOCK);

/**
 * syncfs of the file system holding `path`, through coreutils' `sync -f` (Node has no syncfs).
 * Spawned directly, not through run(): loading execa for it cost a restore 100 ms.
 */
async function syncFileSystem(path: string | Buffer): Promise<void> {
  if (typeof path !== 'string') throw new Error(`sync -f: ${pathString(path)} is not valid UTF-8`); // argv takes strings
  const { spawn } = process.getBuiltinModule('node:child_process');
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sync', ['-f', path], { stdio: 'ignore', timeout: 10 * 60_000 });
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`sync -f ${pathString(path)} ${signal ? `was stopped by ${signal}` : `exited ${code}`}`))));
  });
}

/**
 * writeFile's path for a small local file: only the open goes through the thread pool (creating a
 * file is the costly part, hundreds of microseconds of kernel time on ext4, which would stall the
 * event loop); the write, the mode (set through the descriptor, despite the umask) and the close
 * are microseconds each, done in place instead of three more trips through the pool.
 */
async function writeSmallFile(path: string | Buffer, data: Buffer, flags: 'w' | 'wx', mode: number | undefined): Promise<void> {
  const fd = await new Promise<number>((resolve, reject) => openCallback(path, flags, mode ?? 0o666, (error, opened) => (error ? reject(error) : resolve(opened))));
  try {
    for (let written = 0; written < data.length; ) written += writeSync(fd, data, written, data.length - written);
    if (mode !== undefined) fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/** Copy `from` to `to` (created with `from`'s permission bits), leaving every all-zero block a hole (reading a hole is cheap: the kernel returns zeros). */
async function copySparse(from: string | Buffer, to: string | Buffer): Promise<void> {
  const source = await fs.open(from, 'r');
  try {
    const { size, mode } = await source.stat();
    const target = await fs.open(to, 'w', mode & 0o7777);
    try {
      const buffer = Buffer.alloc(SPARSE_CHUNK);
      for (let offset = 0; offset < size; ) {
        const { bytesRead } = await source.read(buffer, 0, Math.min(SPARSE_CHUNK, size - offset), offset);
        if (bytesRead === 0) break;
        // Write each run of blocks that hold data; skip the blocks of zeros.
        let runStart = -1;
        for (let at = 0; at < bytesRead; at += HOLE_BLOCK) {
          const end = Math.min(at + HOLE_BLOCK, bytesRead);
          const data = !buffer.subarray(at, end).equals(ZERO_BLOCK.subarray(0, end - at));
          if (data && runStart < 0) runStart = at;
          if (!data && runStart >= 0) {
            await target.write(buffer, runStart, at - runStart, offset + runStart);
            runStart = -1;
          }
        }
        if (runStart >= 0) await target.write(buffer, runStart, bytesRead - runStart, offset + runStart);
        offset += bytesRead;
      }
      await target.truncate(size);
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

export class RealHost implements Host {
  /** FUSE mount points, refreshed whenever the mount table is read and after every subprocess. */
  // A plain field, not #private: tests wrap a host with Object.create(host) to inject faults.
  private fuseMounts: string[] | undefined;

  /**
   * Metadata of local paths is answered synchronously: microseconds, and no error objects for
   * missing paths (a plan of 500 links makes 2,000 such calls). A path under a FUSE mount goes
   * through the thread pool instead, so that a slow or hung daemon never blocks the event loop.
   */
  private isLocal(rawPath: HostPath): boolean {
    this.fuseMounts ??= fuseMountPoints(parseMountinfo(readFileSync(MOUNTINFO, 'utf8')));
    const path = pathString(rawPath);
    return !this.fuseMounts.some((mount) => path === mount || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`));
  }

  async lstat(path: HostPath): Promise<FileInfo | null> {
    if (this.isLocal(path)) {
      try {
        const stats = lstatSync(fsPath(path), { throwIfNoEntry: false });
        return stats ? info(stats) : null;
      } catch (error) {
        if (isMissing(error)) return null; // ENOTDIR: a parent is a file
        throw error;
      }
    }
    try {
      return info(await fs.lstat(fsPath(path)));
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async stat(path: HostPath): Promise<FileInfo | null> {
    try {
      return info(await fs.stat(fsPath(path)));
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async readlink(path: HostPath): Promise<string> {
    const target = this.isLocal(path) ? readlinkSync(fsPath(path), { encoding: 'buffer' }) : await fs.readlink(fsPath(path), { encoding: 'buffer' });
    return nameFromBytes(target);
  }

  async readdir(path: HostPath): Promise<string[]> {
    // Local folders synchronously, like lstat: a walk of 100,000 files lists thousands of them.
    return (this.isLocal(path) ? readdirSync(fsPath(path)) : await fs.readdir(fsPath(path))).sort();
  }

  async readdirNames(path: HostPath): Promise<string[]> {
    // Local folders synchronously, like lstat: a walk lists every folder of a synced tree. Names are
    // read as strings; only a folder where one decodes with U+FFFD (not UTF-8, or a real U+FFFD) is
    // read again as bytes: a Buffer per name cost a walk of 2,000 files about 10 ms.
    const local = this.isLocal(path);
    const names = local ? readdirSync(fsPath(path)) : await fs.readdir(fsPath(path));
    if (!names.some((name) => name.includes('\uFFFD'))) return names.sort();
    const bytes = local ? readdirSync(fsPath(path), { encoding: 'buffer' }) : await fs.readdir(fsPath(path), { encoding: 'buffer' });
    return bytes.map(nameFromBytes).sort();
  }

  readFile(path: HostPath): Promise<Buffer> {
    return fs.readFile(fsPath(path));
  }

  readFileNow(path: string): Buffer {
    return readFileSync(path);
  }

  async readHead(path: HostPath, bytes: number): Promise<Buffer> {
    const handle = await fs.open(fsPath(path), 'r');
    try {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  hashFile(path: HostPath): Promise<string> {
    return new Promise((resolve, reject) => {
      const hash = crypto().createHash('sha256');
      createReadStream(fsPath(path))
        .on('data', (chunk) => hash.update(chunk))
        .on('error', reject)
        .on('end', () => resolve(hash.digest('hex')));
    });
  }

  async mounts(): Promise<MountEntry[]> {
    const entries = parseMountinfo(await fs.readFile(MOUNTINFO, 'utf8'));
    this.fuseMounts = fuseMountPoints(entries);
    return entries;
  }

  /**
   * A hung FUSE daemon blocks stat() in the kernel; doing it in this process would tie up a
   * libuv thread for good. So `ls` runs in a child that is abandoned (not awaited) on timeout.
   */
  probe(path: string, timeoutMs: number): Promise<ProbeResult> {
    // Loaded here: a plan that probes no FUSE mount and runs nothing never needs child_process.
    const { spawn } = process.getBuiltinModule('node:child_process');
    return new Promise((resolve) => {
      const child = spawn('ls', ['-A1', '--', path], { stdio: ['ignore', 'pipe', 'pipe'], env: { LC_ALL: 'C', PATH: process.env.PATH } });
      let stdout = '';
      let stderr = '';
      let settled = false;
      const finish = (result: ProbeResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        child.unref();
        finish({ state: 'dead', reason: `no answer within ${timeoutMs} ms` });
      }, timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', (error) => finish({ state: 'dead', reason: error.message }));
      child.on('close', (code) => {
        if (code === 0) return finish({ state: 'ok', entries: stdout.split('\n').filter(Boolean).length });
        if (/No such file or directory/.test(stderr)) return finish({ state: 'missing' });
        const reason = stderr.trim().replace(/^ls: /, '') || `ls exited with ${code}`;
        finish({ state: 'dead', reason });
      });
    });
  }

  async isExecutable(path: string): Promise<boolean> {
    try {
      await fs.access(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }

  async openReadWrite(path: string): Promise<void> {
    const handle = await fs.open(path, 'r+');
    await handle.close();
  }

  env(): Record<string, string | undefined> {
    return process.env;
  }

  cwd(): string {
    return process.cwd();
  }

  now(): Date {
    return new Date();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  pid(): number {
    return process.pid;
  }

  async openersOf(folder: string): Promise<{ pid: number; command: string; path: string }[]> {
    const inside = (path: string): boolean => path === folder || path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
    const found: { pid: number; command: string; path: string }[] = [];
    const pids = (await fs.readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
    for (const pid of pids) {
      const links: string[] = [];
      links.push(await fs.readlink(`/proc/${pid}/cwd`).catch(() => ''));
      for (const fd of await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) links.push(await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
      const hit = links.find((link) => link !== '' && inside(link.replace(/ \(deleted\)$/, '')));
      if (hit === undefined) continue;
      const command = (await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      found.push({ pid: Number(pid), command, path: hit });
    }
    return found;
  }

  async writersOf(path: string): Promise<{ writers: { pid: number; append: boolean }[]; complete: boolean }> {
    // Synchronous: /proc is local, and the whole look must fit between two stats of the file.
    let target: string;
    try {
      target = realpathSync(path);
    } catch {
      return { writers: [], complete: false };
    }
    const writers: { pid: number; append: boolean }[] = [];
    let complete = true;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') complete = false; // not ours to look into
        continue;
      }
      for (const fd of fds) {
        let link: string;
        try {
          link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue; // closed meanwhile
        }
        if (link !== target) continue;
        // `flags:` is octal: O_WRONLY 01, O_RDWR 02, O_APPEND 02000. Unreadable: counted as a writer.
        let fdinfo = '';
        try {
          fdinfo = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
        } catch {
          // closed meanwhile
        }
        const flags = /^flags:\s+([0-7]+)$/m.exec(fdinfo);
        const value = flags ? parseInt(flags[1]!, 8) : 0o2;
        if ((value & 0o3) !== 0) writers.push({ pid: Number(pid), append: (value & 0o2000) !== 0 });
      }
    }
    return { writers, complete };
  }

  processAlive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  async mkdir(rawPath: HostPath, options?: { mode?: number }): Promise<void> {
    const path = fsPath(rawPath);
    try {
      await fs.mkdir(path, { recursive: true, mode: options?.mode });
    } catch (error) {
      // Node's recursive mkdir reports ENOENT where the real cause is EROFS, EPERM or EACCES on
      // the last folder: a plain mkdir of that folder gives the true reason for the message.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await fs.mkdir(path, { mode: options?.mode });
    }
  }

  async writeFile(rawPath: HostPath, data: string | Buffer, options?: { mode?: number; exclusive?: boolean; durable?: boolean }): Promise<void> {
    // A small local file that need not reach the disk now: one trip through the thread pool instead
    // of four (writeSmallFile). An fsync, a large file and FUSE take the general path.
    if (!options?.durable && this.isLocal(rawPath) && (typeof data === 'string' ? data.length * 3 : data.length) <= SMALL_WRITE_LIMIT) {
      return writeSmallFile(fsPath(rawPath), typeof data === 'string' ? Buffer.from(data, 'utf8') : data, options?.exclusive ? 'wx' : 'w', options?.mode);
    }
    // Created with its mode and changed through the open file: on s3fs a chmod by path after the
    // close is a request of its own (a server-side copy), through the handle it rides on the upload.
    const handle = await fs.open(fsPath(rawPath), options?.exclusive ? 'wx' : 'w', options?.mode ?? 0o666);
    try {
      await handle.writeFile(data);
      if (options?.mode !== undefined) await handle.chmod(options.mode);
      if (options?.durable) await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async writeFileAtomic(rawPath: HostPath, data: string | Buffer, options?: { mode?: number }): Promise<void> {
    const path = pathString(rawPath);
    const temp = fsPath(join(dirname(path), `.${basename(path)}.persist-tmp-${process.pid}-${crypto().randomBytes(4).toString('hex')}`));
    const handle = await fs.open(temp, 'w', options?.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      if (options?.mode !== undefined) await handle.chmod(options.mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.rename(temp, fsPath(path));
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
  }

  copyFile(from: HostPath, to: HostPath, options?: { sparse?: boolean }): Promise<void> {
    return options?.sparse ? copySparse(fsPath(from), fsPath(to)) : fs.copyFile(fsPath(from), fsPath(to));
  }

  symlink(target: HostPath, path: HostPath): Promise<void> {
    return fs.symlink(fsPath(target), fsPath(path));
  }

  link(existing: HostPath, path: HostPath): Promise<void> {
    return fs.link(fsPath(existing), fsPath(path));
  }

  async rename(from: HostPath, to: HostPath): Promise<void> {
    if (this.isLocal(from) && this.isLocal(to)) renameSync(fsPath(from), fsPath(to));
    else await fs.rename(fsPath(from), fsPath(to));
  }

  remove(path: HostPath): Promise<void> {
    return fs.rm(fsPath(path), { recursive: true, force: true });
  }

  async chmod(path: HostPath, mode: number): Promise<void> {
    if (this.isLocal(path)) chmodSync(fsPath(path), mode);
    else await fs.chmod(fsPath(path), mode);
  }

  async utimes(path: HostPath, mtimeMs: number): Promise<void> {
    const seconds = mtimeMs / 1000;
    if (this.isLocal(path)) utimesSync(fsPath(path), seconds, seconds);
    else await fs.utimes(fsPath(path), seconds, seconds);
  }

  async fsync(path: HostPath, options?: { fileSystem?: boolean }): Promise<void> {
    if (options?.fileSystem) return syncFileSystem(fsPath(path));
    const handle = await fs.open(fsPath(path), 'r');
    try {
      await handle.sync();
    } catch (error) {
      // Some file systems (and directories on some FUSE backends) do not support fsync.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EBADF' && code !== 'ENOSYS') throw error;
    } finally {
      await handle.close();
    }
  }

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    this.fuseMounts = undefined; // the command may mount or unmount something (checked again after it)
    const { execa } = await import('execa');
    const result = await execa(command, args, {
      cwd: options.cwd,
      env: options.env,
      extendEnv: options.env === undefined,
      input: options.input,
      timeout: options.timeoutMs,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    this.fuseMounts = undefined;
    if (result.failed && result.exitCode === undefined && !result.timedOut) {
      // The command could not be started at all (not installed...).
      return { exitCode: 127, stdout: '', stderr: result.originalMessage ?? result.message ?? 'could not start', timedOut: false };
    }
    return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), timedOut: result.timedOut };
  }
}
