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
}
