// The resolved form of one environment of a spec: every path absolute, every name checked,
// interpolation done, credentials wrapped in Sensitive. The engine only ever sees this.
import type { BackendName } from '../backends/registry.js';
import type { Sensitive } from './sensitive.js';

/** The backends' names: the keys of the registry (src/backends/registry.ts). */
export type { BackendName } from '../backends/registry.js';
export type Provider = 'r2' | 'aws' | 'other';

export interface ResolvedCredentials {
  accessKeyId: Sensitive;
  secretAccessKey: Sensitive;
}

export interface ResolvedBucket {
  /** The key under `buckets:` (e.g. `data`); the address is `mount.<key>`. */
  key: string;
  /** The bucket's name at the store (e.g. `moltbot-data-development`). */
  name: string;
  endpoint?: string;
  region?: string;
  pathStyle: boolean;
  provider: Provider;
  credentials?: ResolvedCredentials;
  /** Every key of this environment lies under it: `a/b/` (normalised, trailing slash) or ''. */
  prefix?: string;
  /** Absent: the bucket is reached through its S3 API (no FUSE, no daemon). */
  mount?: BucketMount;
  /** `lease: { ttl }` in milliseconds, when the spec sets it (else the default, 60 s). */
  leaseTtlMs?: number;
}

export interface BucketMount {
  backend: BackendName;
  /** Absolute mount path. */
  path: string;
  options: Record<string, unknown>;
}

/** A bucket with a `mount:` (what the mount module and the backends work on). */
export type MountedBucket = ResolvedBucket & { mount: BucketMount };

export function isMounted(bucket: ResolvedBucket): bucket is MountedBucket {
  return bucket.mount !== undefined;
}

export interface ResolvedLink {
  name: string;
  /** Bucket key. */
  bucket: string;
  /** Absolute path of the symlink: `<workspace>/<name>`. */
  path: string;
  /** Path inside the mount, relative, normalised (`workspace/memory`). */
  relTarget: string;
  /** Absolute target: `<mount path>/<relTarget>`. */
  target: string;
}

export interface ResolvedBundle {
  name: string;
  bucket: string;
  /** Absolute path of the local git repository (its work tree). */
  repo: string;
  relFile: string;
  /** Absolute path of the bundle file in the mount. */
  file: string;
  /** Earlier generations kept as `<file>.1` ... `<file>.<keep>`. */
  keep: number;
  /** Remote URL set as `origin` on restore, if given. */
  remote?: string;
}

export interface ResolvedSync {
  name: string;
  bucket: string;
  /** Absolute local directory. */
  from: string;
  relTo: string;
  /** Absolute mirror directory in the mount. */
  to: string;
  delete: boolean;
  exclude: string[];
  /** A push may delete at most this fraction of the mirror's files without --allow-shrink. */
  maxDeleteRatio: number;
  /** Generations kept in the store, the current one included (resolve sets it; default 10). */
  keep?: number;
}

export interface ResolvedFile {
  name: string;
  bucket: string;
  relFrom: string;
  /** Absolute path of the file in the mount. */
  from: string;
  /** Absolute local path. */
  to: string;
  /** File mode, e.g. 0o600. */
  mode: number;
}

export interface ResolvedEnvironment {
  /** Absolute path of the spec file. */
  specFile: string;
  /** sha256 of the spec file's bytes. */
  specHash: string;
  environment: string;
  /** Absolute workspace folder. */
  workspace: string;
  buckets: Record<string, ResolvedBucket>;
  links: Record<string, ResolvedLink>;
  bundles: Record<string, ResolvedBundle>;
  syncs: Record<string, ResolvedSync>;
  files: Record<string, ResolvedFile>;
}
