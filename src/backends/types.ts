// One driver per mount backend behind this interface; the registry (registry.ts) maps names to
// drivers, so adding a backend is one new file and one registry line (then `npm run schema`).
import type { Host, MountEntry } from '../host/types.js';
import type { MountedBucket } from '../spec/types.js';
import type { OptionProblem, OptionsTable } from './options.js';

export type { OptionProblem } from './options.js';

export interface MountCommand {
  command: string;
  args: string[];
  /** The child's complete environment additions (credentials go here, never in args). */
  env: Record<string, string>;
  /** Files to write before starting (e.g. the s3fs passwd file), mode 0600, removed on failure. */
  files: { path: string; content: string; mode: number }[];
  /** Log file the daemon writes its errors to, read when a mount fails. */
  logFile?: string;
}

export interface BackendContext {
  host: Host;
  /** Private runtime folder for this bucket (passwd files, logs, caches), mode 0700. */
  runtimeDir: string;
  /** Process environment (to inherit, minus what must be removed, such as AWS_CA_BUNDLE for rclone). */
  processEnv: Record<string, string | undefined>;
}

export interface Backend {
  name: string;
  /** Whether a real FUSE mount is involved (false for `local`). */
  fuse: boolean;
  /**
   * close(2) of a written file returns only once the store accepted it, and a failed upload is
   * the error of that close (s3fs, checked: docs/backends.md): a whole write then needs no fsync,
   * which costs s3fs one more request per file.
   */
  uploadsOnClose?: boolean;
  /**
   * Whether persist moves this bucket's syncs, bundles and files through its S3 API (with the
   * bucket's credentials) rather than through the mount; links always use the mount. Absent:
   * never (rclone: its write-back cache would upload a stale copy over an object written beside
   * it, and a file written through the mount is not in the store for seconds). See docs/backends.md.
   */
  dataThroughApi?(bucket: MountedBucket): boolean;
  /** Debian package providing the binary, for doctor. */
  binary?: { command: string; debianPackage: string };
  /** The options `mount.options` may hold (the schema's part for this backend is made from it). */
  options: OptionsTable;
  /** Problems with `mount.options` for this backend (unknown keys, wrong types). */
  validateOptions(options: Record<string, unknown>): OptionProblem[];
  /** Whether a mountinfo entry is this bucket mounted by this backend. */
  matches(entry: MountEntry, bucket: MountedBucket): boolean;
  /** Whether a mountinfo entry was made by this backend at all (any bucket). */
  owns(entry: MountEntry): boolean;
  /** The command that mounts the bucket (async: a driver may need to look around first, e.g. rclone picks a free port). */
  mountCommand(bucket: MountedBucket, ctx: BackendContext): Promise<MountCommand>;
  /** Flush pending writes (rclone) and unmount; lazily if busy. */
  unmount(bucket: MountedBucket, mountPoint: string, ctx: BackendContext): Promise<void>;
  /**
   * Wait (bounded by `timeoutMs`) until the backend holds nothing written that the store does not
   * hold, and check what was pending against the store itself. Throws an ActionError naming the
   * reason (and the files) when it cannot. Absent: every write is in the store when it returns
   * (s3fs uploads on close and fsync; `local` is the store). See docs/backends.md.
   * `everyEarlierWrite` (shutdown): every file written before the wait began, one the agent keeps
   * rewriting included, must be in the store with its content of then or later.
   */
  flush?(bucket: MountedBucket, ctx: BackendContext, options: { timeoutMs: number; everyEarlierWrite?: boolean }): Promise<FlushReport>;
  /** Writes the live mount holds that are not in the store yet (status); null when unknown. Read-only. */
  pendingWrites?(bucket: MountedBucket, ctx: BackendContext): Promise<PendingWrites | null>;
  /** Files a dead daemon left unuploaded in its local cache (looked at before mounting). Read-only. */
  leftovers?(bucket: MountedBucket, ctx: BackendContext): Promise<Leftovers>;
  /** Upload the `uploadable` leftovers into the store (verified) and drop them from the cache; returns how many. */
  recover?(bucket: MountedBucket, ctx: BackendContext, report: (line: string) => void): Promise<number>;
  /** Stop a daemon that did not come up (or whose mount is gone) and remove its runtime files. */
  stop?(bucket: MountedBucket, mountPoint: string, ctx: BackendContext): Promise<void>;
}

export interface FlushReport {
  /** Files that were pending when the flush began and are now checked in the store. */
  verified: number;
  waitedMs: number;
}

export interface PendingWrites {
  count: number;
  /** When the oldest pending write was made (ms since the epoch), if known. */
  oldestMs: number | null;
}

export interface LeftoverFile {
  key: string;
  size: number;
  /** Where its bytes are on local disk. */
  where: string;
  /** Why persist will not upload it by itself (stranded only). */
  reason?: string;
}

export interface Leftovers {
  uploadable: LeftoverFile[];
  stranded: LeftoverFile[];
  /** Cached copies whose record the dead daemon left cut off, and whose bytes the store holds: dropped before a new daemon starts. */
  alreadyStored?: string[];
}
