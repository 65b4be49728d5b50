// An in-memory host for unit tests: a file tree with symlinks, a settable mount table, scripted
// probes and subprocesses, and a clock that moves only when told to (or when code sleeps on it).
// No disk, no processes, no waiting.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { pathString } from './names.js';
import type { FileInfo, Host, HostPath, MountEntry, ProbeResult, RunOptions, RunResult } from './types.js';

type Node =
  | { type: 'file'; data: Buffer; mode: number; mtimeMs: number }
  | { type: 'dir'; mode: number; mtimeMs: number }
  | { type: 'symlink'; target: string; mode: number; mtimeMs: number }
  | { type: 'other'; mode: number; mtimeMs: number };

function errno(code: string, path: HostPath): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${pathString(path)}`) as NodeJS.ErrnoException;
  error.code = code;
  return error;
}

export type RunHandler = (command: string, args: string[], options: RunOptions) => RunResult | Promise<RunResult>;

export class MemoryHost implements Host {
  readonly nodes = new Map<string, Node>([['/', { type: 'dir', mode: 0o755, mtimeMs: 0 }]]);
  mountTable: MountEntry[] = [];
  /** Probe answers by path; paths not listed are probed from the tree. */
  probes = new Map<string, ProbeResult>();
  environment: Record<string, string | undefined> = {};
  workingDir = '/';
  clock = new Date('2026-01-01T00:00:00Z');
  runHandler: RunHandler = (command) => ({ exitCode: 127, stdout: '', stderr: `${command}: not found`, timedOut: false });
  alivePids = new Set<number>([4242]);

  // --- building trees in tests ---
  addDir(path: string, mode = 0o755): this {
    this.#ensureParent(path);
    this.nodes.set(path, { type: 'dir', mode, mtimeMs: this.clock.getTime() });
    return this;
  }
  addFile(path: string, content: string | Buffer, mode = 0o644): this {
    this.#ensureParent(path);
    this.nodes.set(path, { type: 'file', data: Buffer.from(content), mode, mtimeMs: this.clock.getTime() });
    return this;
  }
  addSymlink(path: string, target: string): this {
    this.#ensureParent(path);
    this.nodes.set(path, { type: 'symlink', target, mode: 0o777, mtimeMs: this.clock.getTime() });
    return this;
  }
  addOther(path: string): this {
    this.#ensureParent(path);
    this.nodes.set(path, { type: 'other', mode: 0o644, mtimeMs: this.clock.getTime() });
    return this;
  }

  #ensureParent(path: string): void {
    const parent = posix.dirname(path);
    if (parent === path) return;
    if (!this.nodes.has(parent)) {
      this.#ensureParent(parent);
      this.nodes.set(parent, { type: 'dir', mode: 0o755, mtimeMs: this.clock.getTime() });
    }
  }

  /** Follow symlinks in every component of `path` (a Buffer path is decoded losslessly: host/names.ts). */
  #resolve(rawPath: HostPath, followLast: boolean, depth = 0): string {
    const path = pathString(rawPath);
    if (depth > 40) throw errno('ELOOP', path);
    const parts = posix.normalize(path).split('/').filter(Boolean);
    let current = '/';
    for (let i = 0; i < parts.length; i++) {
      const next = posix.join(current, parts[i] ?? '');
      const node = this.nodes.get(next);
      const isLast = i === parts.length - 1;
      if (node?.type === 'symlink' && (!isLast || followLast)) {
        const target = posix.resolve(current, node.target);
        current = this.#resolve(target, true, depth + 1);
      } else {
        current = next;
      }
    }
    return current;
  }

  #node(path: HostPath, follow: boolean): Node | undefined {
    return this.nodes.get(this.#resolve(path, follow));
  }

  /** Inode numbers: one per node object, so that the names of a hard link share one. */
  readonly #inodes = new WeakMap<Node, number>();

  #info(node: Node): FileInfo {
    let ino = this.#inodes.get(node);
    if (ino === undefined) this.#inodes.set(node, (ino = this.#nextInode++));
    let nlink = 0;
    for (const other of this.nodes.values()) if (other === node) nlink++;
    return { type: node.type, size: node.type === 'file' ? node.data.length : 0, mode: node.mode, mtimeMs: node.mtimeMs, dev: 1, ino, nlink };
  }
  #nextInode = 2;

  async lstat(path: HostPath): Promise<FileInfo | null> {
    const node = this.#node(path, false);
    return node ? this.#info(node) : null;
  }
  async stat(path: HostPath): Promise<FileInfo | null> {
    const node = this.#node(path, true);
    return node ? this.#info(node) : null;
  }
  async readlink(path: HostPath): Promise<string> {
    const node = this.#node(path, false);
    if (node?.type !== 'symlink') throw errno(node ? 'EINVAL' : 'ENOENT', path);
    return node.target;
  }
  /** Names are kept exactly already (a Buffer path is stored under its lossless string). */
  readdirNames(path: HostPath): Promise<string[]> {
    return this.readdir(path);
  }
  async readdir(path: HostPath): Promise<string[]> {
    const dir = this.#resolve(path, true);
    const node = this.nodes.get(dir);
    if (!node) throw errno('ENOENT', path);
    if (node.type !== 'dir') throw errno('ENOTDIR', path);
    const prefix = dir === '/' ? '/' : `${dir}/`;
    const names: string[] = [];
    for (const key of this.nodes.keys()) {
      if (key !== dir && key.startsWith(prefix) && !key.slice(prefix.length).includes('/')) names.push(key.slice(prefix.length));
    }
    return names.sort();
  }
  async readFile(path: HostPath): Promise<Buffer> {
    return this.readFileNow(pathString(path));
  }
  readFileNow(path: string): Buffer {
    const node = this.#node(path, true);
    if (!node) throw errno('ENOENT', path);
    if (node.type !== 'file') throw errno('EISDIR', path);
    return Buffer.from(node.data);
  }
  async readHead(path: HostPath, bytes: number): Promise<Buffer> {
    return (await this.readFile(path)).subarray(0, bytes);
  }
  async hashFile(path: HostPath): Promise<string> {
    return createHash('sha256').update(await this.readFile(path)).digest('hex');
  }
  async mounts(): Promise<MountEntry[]> {
    return this.mountTable;
  }
  async probe(path: string): Promise<ProbeResult> {
    const scripted = this.probes.get(path);
    if (scripted) return scripted;
    const node = this.#node(path, true);
    if (!node) return { state: 'missing' };
    return { state: 'ok', entries: node.type === 'dir' ? (await this.readdir(path)).length : 0 };
  }
  async isExecutable(path: string): Promise<boolean> {
    const node = this.#node(path, true);
    return node !== undefined && (node.mode & 0o111) !== 0;
  }
  async openReadWrite(path: string): Promise<void> {
    const node = this.#node(path, true);
    if (!node) throw errno('ENOENT', path);
    if (node.type === 'dir') throw errno('EISDIR', path);
  }
  env(): Record<string, string | undefined> {
    return this.environment;
  }
  cwd(): string {
    return this.workingDir;
  }
  now(): Date {
    return this.clock;
  }
  /** Advances the clock by `ms` at once (after letting other pending work run). */
  async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.clock = new Date(this.clock.getTime() + Math.max(0, ms));
  }
  pid(): number {
    return 4242;
  }
  processAlive(pid: number): boolean {
    return this.alivePids.has(pid);
  }
  async openersOf(_folder: string): Promise<{ pid: number; command: string; path: string }[]> {
    return [];
  }
  /** No processes in memory: nothing is known about writers. */
  async writersOf(_path: string): Promise<{ writers: { pid: number; append: boolean }[]; complete: boolean }> {
    return { writers: [], complete: false };
  }

  async mkdir(path: HostPath, options?: { mode?: number }): Promise<void> {
    const resolved = this.#resolve(path, true);
    const node = this.nodes.get(resolved);
    if (node && node.type !== 'dir') throw errno('EEXIST', path);
    if (!node) this.addDir(resolved, options?.mode ?? 0o755);
  }
  async writeFile(path: HostPath, data: string | Buffer, options?: { mode?: number; exclusive?: boolean; durable?: boolean }): Promise<void> {
    const resolved = this.#resolve(path, true);
    if (options?.exclusive && this.nodes.has(resolved)) throw errno('EEXIST', path);
    this.#requireParent(resolved);
    this.addFile(resolved, data, options?.mode ?? 0o644);
  }
  async writeFileAtomic(path: HostPath, data: string | Buffer, options?: { mode?: number }): Promise<void> {
    await this.writeFile(path, data, options);
  }
  async copyFile(from: HostPath, to: HostPath): Promise<void> {
    const source = this.#node(from, true);
    if (source?.type !== 'file') throw errno('ENOENT', from);
    const resolved = this.#resolve(to, true);
    this.#requireParent(resolved);
    this.nodes.set(resolved, { type: 'file', data: Buffer.from(source.data), mode: source.mode, mtimeMs: this.clock.getTime() });
  }
  async symlink(target: HostPath, path: HostPath): Promise<void> {
    const resolved = this.#resolve(path, false);
    if (this.nodes.has(resolved)) throw errno('EEXIST', resolved);
    this.#requireParent(resolved);
    this.addSymlink(resolved, pathString(target));
  }
  async link(existing: HostPath, path: HostPath): Promise<void> {
    const source = this.#node(existing, false);
    if (!source) throw errno('ENOENT', pathString(existing));
    if (source.type === 'dir') throw errno('EPERM', pathString(existing));
    const resolved = this.#resolve(path, false);
    if (this.nodes.has(resolved)) throw errno('EEXIST', resolved);
    this.#requireParent(resolved);
    this.nodes.set(resolved, source);
  }
  async rename(from: HostPath, to: HostPath): Promise<void> {
    const source = this.#resolve(from, false);
    const target = this.#resolve(to, false);
    if (!this.nodes.has(source)) throw errno('ENOENT', source);
    this.#requireParent(target);
    const existing = this.nodes.get(target);
    if (existing?.type === 'dir' && (await this.readdir(target)).length > 0) throw errno('ENOTEMPTY', target);
    const moved = [...this.nodes.entries()].filter(([key]) => key === source || key.startsWith(`${source}/`));
    for (const [key] of moved) this.nodes.delete(key);
    for (const [key, node] of moved) this.nodes.set(target + key.slice(source.length), node);
  }
  async remove(path: HostPath): Promise<void> {
    const resolved = this.#resolve(path, false);
    for (const key of [...this.nodes.keys()]) if (key === resolved || key.startsWith(`${resolved}/`)) this.nodes.delete(key);
  }
  async chmod(path: HostPath, mode: number): Promise<void> {
    const node = this.#node(path, true);
    if (!node) throw errno('ENOENT', pathString(path));
    node.mode = mode;
  }
  async utimes(path: HostPath, mtimeMs: number): Promise<void> {
    const node = this.#node(path, true);
    if (!node) throw errno('ENOENT', pathString(path));
    node.mtimeMs = mtimeMs;
  }
  async fsync(path: HostPath, _options?: { fileSystem?: boolean }): Promise<void> {
    if (!this.#node(path, true)) throw errno('ENOENT', pathString(path));
  }
  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    return this.runHandler(command, args, options);
  }

  #requireParent(path: string): void {
    const parent = this.nodes.get(posix.dirname(path));
    if (!parent) throw errno('ENOENT', path);
    if (parent.type !== 'dir') throw errno('ENOTDIR', path);
  }
}
