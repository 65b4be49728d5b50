// The real host: node:fs, /proc/self/mountinfo, child processes, the system clock.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseMountinfo } from './mountinfo.js';
import type { FileInfo, FileType, Host, MountEntry, ProbeResult, RunOptions, RunResult } from './types.js';

function fileType(stats: import('node:fs').Stats): FileType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  return 'other';
}

function info(stats: import('node:fs').Stats): FileInfo {
  return { type: fileType(stats), size: stats.size, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs };
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

const MOUNTINFO = '/proc/self/mountinfo';

function fuseMountPoints(entries: MountEntry[]): string[] {
  return entries.filter((entry) => entry.fsType === 'fuse' || entry.fsType.startsWith('fuse.')).map((entry) => entry.mountPoint);
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
  private isLocal(path: string): boolean {
    this.fuseMounts ??= fuseMountPoints(parseMountinfo(readFileSync(MOUNTINFO, 'utf8')));
    return !this.fuseMounts.some((mount) => path === mount || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`));
  }

  async lstat(path: string): Promise<FileInfo | null> {
    if (this.isLocal(path)) {
      try {
        const stats = lstatSync(path, { throwIfNoEntry: false });
        return stats ? info(stats) : null;
      } catch (error) {
        if (isMissing(error)) return null; // ENOTDIR: a parent is a file
        throw error;
      }
    }
    try {
      return info(await fs.lstat(path));
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async stat(path: string): Promise<FileInfo | null> {
    try {
      return info(await fs.stat(path));
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async readlink(path: string): Promise<string> {
    return this.isLocal(path) ? readlinkSync(path) : fs.readlink(path);
  }

  async readdir(path: string): Promise<string[]> {
    return (await fs.readdir(path)).sort();
  }

  readFile(path: string): Promise<Buffer> {
    return fs.readFile(path);
  }

  readFileNow(path: string): Buffer {
    return readFileSync(path);
  }

  async readHead(path: string, bytes: number): Promise<Buffer> {
    const handle = await fs.open(path, 'r');
    try {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  hashFile(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const hash = createHash('sha256');
      createReadStream(path)
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

  async mkdir(path: string, options?: { mode?: number }): Promise<void> {
    try {
      await fs.mkdir(path, { recursive: true, mode: options?.mode });
    } catch (error) {
      // Node's recursive mkdir reports ENOENT where the real cause is EROFS, EPERM or EACCES on
      // the last folder: a plain mkdir of that folder gives the true reason for the message.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await fs.mkdir(path, { mode: options?.mode });
    }
  }

  async writeFile(path: string, data: string | Buffer, options?: { mode?: number; exclusive?: boolean }): Promise<void> {
    await fs.writeFile(path, data, { mode: options?.mode, flag: options?.exclusive ? 'wx' : 'w' });
    if (options?.mode !== undefined) await fs.chmod(path, options.mode);
  }

  async writeFileAtomic(path: string, data: string | Buffer, options?: { mode?: number }): Promise<void> {
    const temp = join(dirname(path), `.${basename(path)}.persist-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    const handle = await fs.open(temp, 'w', options?.mode ?? 0o644);
    try {
      await handle.writeFile(data);
      if (options?.mode !== undefined) await handle.chmod(options.mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.rename(temp, path);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
  }

  copyFile(from: string, to: string): Promise<void> {
    return fs.copyFile(from, to);
  }

  symlink(target: string, path: string): Promise<void> {
    return fs.symlink(target, path);
  }

  rename(from: string, to: string): Promise<void> {
    return fs.rename(from, to);
  }

  remove(path: string): Promise<void> {
    return fs.rm(path, { recursive: true, force: true });
  }

  chmod(path: string, mode: number): Promise<void> {
    return fs.chmod(path, mode);
  }

  async utimes(path: string, mtimeMs: number): Promise<void> {
    const seconds = mtimeMs / 1000;
    await fs.utimes(path, seconds, seconds);
  }

  async fsync(path: string): Promise<void> {
    const handle = await fs.open(path, 'r');
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
