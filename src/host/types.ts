// The one boundary for every effect: files, the mount table, subprocesses, the clock.
// Commands compose a host in one place (commands/host.ts, makeHost): the real one, wrapped
// read-only for plan and status, and logging every call under --debug; tests use the in-memory one or wrap it to record writes. Pure code never touches
// `node:fs`, `process` or `Date.now`.

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

/**
 * A path: a string, or the path's exact bytes. A name need not be UTF-8: a string may carry
 * such bytes as lone surrogates (host/names.ts), and the host writes those bytes, never U+FFFD.
 */
export type HostPath = string | Buffer;

export interface FileInfo {
  type: FileType;
  size: number;
  /** Permission bits only (e.g. 0o644). */
  mode: number;
  mtimeMs: number;
  /** Status change time: moves on every write, chmod and rename, even when mtime is set back. Optional: stores may not know it. */
  ctimeMs?: number;
  /** Birth (creation) time, where the file system gives it (local stats only). */
  birthtimeMs?: number;
  /** Device and inode: equal for the names of one hard-linked file (local stats only). */
  dev?: number;
  ino?: number;
  /** Number of hard links (names) of the file. */
  nlink?: number;
  /** 512-byte blocks allocated: fewer than the size needs means the file has holes (sparse). */
  blocks?: number;
}

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** The file system's device as `major:minor` (what `st_dev` of its files decodes to). */
  device?: string;
  /** Absolute mount point, unescaped. */
  mountPoint: string;
  /** Root of the mount within its file system. */
  root: string;
  /** File system type, e.g. `fuse.s3fs`. */
  fsType: string;
  /** Mount source, unescaped, e.g. the bucket name. */
  source: string;
  options: string;
  superOptions: string;
}

/** Result of a bounded health probe of a path (stat + list, off the main event loop). */
export type ProbeResult =
  | { state: 'ok'; entries: number }
  | { state: 'missing' }
  | { state: 'dead'; reason: string };

export interface RunOptions {
  cwd?: string;
  /** Complete environment of the child (secrets go here, never in args). */
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  timeoutMs?: number;
  /** The caller promises the command changes nothing (e.g. `git cat-file`): allowed on a read-only host. */
  readOnly?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface Host {
  // --- reads ---
  /** lstat; null when the path does not exist. */
  lstat(path: HostPath): Promise<FileInfo | null>;
  /** stat (follows symlinks); null when the path (or the link's target) does not exist. */
  stat(path: HostPath): Promise<FileInfo | null>;
  readlink(path: HostPath): Promise<string>;
  /** Names in a directory, sorted (a name that is not UTF-8 comes back with U+FFFD: see readdirNames). */
  readdir(path: HostPath): Promise<string[]>;
  /** Names in a directory, sorted, each exactly (a byte that is not UTF-8 as `nameFromBytes` carries it, host/names.ts). */
  readdirNames(path: HostPath): Promise<string[]>;
  readFile(path: HostPath): Promise<Buffer>;
  /**
   * The whole file, read synchronously: only for the few small local files read at every start
   * (the spec and its parse cache), where a trip through the thread pool costs start-up time.
   * Throws the system error (ENOENT, EISDIR...).
   */
  readFileNow(path: string): Buffer;
  /** The first `bytes` bytes of a file (or all of it if shorter). */
  readHead(path: HostPath, bytes: number): Promise<Buffer>;
  /** sha256 hex of a file's content. */
  hashFile(path: HostPath): Promise<string>;
  /** Parsed /proc/self/mountinfo. */
  mounts(): Promise<MountEntry[]>;
  /** Bounded probe: stat and list `path` off the main event loop; `dead` on ENOTCONN, ECONNABORTED or timeout. */
  probe(path: string, timeoutMs: number): Promise<ProbeResult>;
  /** Whether `path` may be executed (access X_OK): finding a command on PATH. */
  isExecutable(path: string): Promise<boolean>;
  /** Open `path` read-write and close it again (a device such as /dev/fuse); throws the system error. */
  openReadWrite(path: string): Promise<void>;
  /** Environment variables visible to the process. */
  env(): Record<string, string | undefined>;
  /** The working directory relative paths are resolved against. */
  cwd(): string;
  now(): Date;
  /** Wait `ms` of this host's clock (the in-memory host advances its clock instead of waiting). */
  sleep(ms: number): Promise<void>;
  pid(): number;
  /** Whether a process with this pid is alive. */
  processAlive(pid: number): boolean;
  /**
   * Other processes holding a file or their working directory inside `folder` (from /proc/<pid>/fd
   * and /proc/<pid>/cwd; processes this user cannot inspect are not seen). Used before an adopt.
   */
  openersOf(folder: string): Promise<{ pid: number; command: string; path: string }[]>;
  /**
   * The processes holding the file `path` open for writing (from /proc/<pid>/fd and fdinfo),
   * each with whether it opened it to append; `complete` is false when some process could not be
   * looked into (another user's, unless persist runs as root), so that none seen proves nothing.
   */
  writersOf(path: string): Promise<{ writers: { pid: number; append: boolean }[]; complete: boolean }>;

  // --- writes (refused by the read-only host) ---
  mkdir(path: HostPath, options?: { mode?: number }): Promise<void>; // recursive
  /** Write a file in place; `durable`: fsync before the close (a FUSE backend uploads then, and reports its error). */
  writeFile(path: HostPath, data: string | Buffer, options?: { mode?: number; exclusive?: boolean; durable?: boolean }): Promise<void>;
  /** Write to a temporary name beside `path`, fsync, then rename into place. */
  writeFileAtomic(path: HostPath, data: string | Buffer, options?: { mode?: number }): Promise<void>;
  /** With `sparse`, runs of zero blocks are left as holes in `to` (a sparse source stays sparse). */
  copyFile(from: HostPath, to: HostPath, options?: { sparse?: boolean }): Promise<void>;
  symlink(target: HostPath, path: HostPath): Promise<void>;
  /** A hard link: `path` becomes another name of the file `existing`. */
  link(existing: HostPath, path: HostPath): Promise<void>;
  rename(from: HostPath, to: HostPath): Promise<void>;
  /** Remove a file, symlink or (recursive) directory; no error if missing. */
  remove(path: HostPath): Promise<void>;
  chmod(path: HostPath, mode: number): Promise<void>;
  utimes(path: HostPath, mtimeMs: number): Promise<void>;
  /**
   * fsync a file (or directory) by path. `fileSystem`: make everything written on the file system
   * that holds `path` durable at once (syncfs), instead of the one file; throws where it cannot.
   */
  fsync(path: HostPath, options?: { fileSystem?: boolean }): Promise<void>;
  /** Run a subprocess (never through a shell). */
  run(command: string, args: string[], options?: RunOptions): Promise<RunResult>;
}

/** Thrown by the read-only host when code under plan/status tries to change something. */
export class ReadOnlyViolation extends Error {
  constructor(operation: string, path: string) {
    super(`internal error: ${operation} ${path} attempted on a read-only host`);
    this.name = 'ReadOnlyViolation';
  }
}
