// What a section's resolver works with: one environment's merged, interpolated tree, the helpers
// that turn its values into checked paths, and the places where it records claims and the facts
// the isolation check needs. Problems are reported, never thrown.
import { isAbsolute, posix, resolve as resolvePath } from 'node:path';
import type { LocalClaim, MountClaim, Report } from './claims.js';
import { hasReference, isPlainObject } from './interpolate.js';
import type { IsolationFacts } from './isolation.js';
import type { KeyPath } from './load.js';
import { lazyPlace, type Part, type Place } from './positions.js';
import type { ResolvedBucket } from './types.js';

/** One entry of a section as written: a mapping, or the short form (a string). */
export type Entry = Record<string, unknown> | string;

export class ResolveContext {
  readonly facts: IsolationFacts = { buckets: [], mounts: [], localPaths: [] };
  readonly mountClaims: MountClaim[] = [];
  readonly localClaims: LocalClaim[] = [];
  /** Absolute workspace folder (the spec's folder until `workspace:` is resolved). */
  workspace: string;
  /** The buckets resolved so far (the buckets section is resolved first). */
  buckets: Record<string, ResolvedBucket> = {};

  constructor(
    /** The spec file's folder: relative local paths resolve against it. */
    readonly specDir: string,
    readonly tree: Record<string, unknown>,
    readonly report: Report,
    readonly place: (path: KeyPath, part?: Part) => Place,
  ) {
    this.workspace = specDir;
  }

  /** The entries of a section that are a mapping or a string (others are schema problems). */
  entries(section: string): [string, Entry][] {
    const value = this.tree[section];
    if (!isPlainObject(value)) return [];
    return Object.entries(value).filter((entry): entry is [string, Entry] => isPlainObject(entry[1]) || typeof entry[1] === 'string');
  }

  /** A usable string at `path`: undefined when absent, of another type, or not interpolated. */
  text(path: KeyPath): string | undefined {
    const node = this.value(path);
    return typeof node === 'string' && !hasReference(node) && node.trim() !== '' ? node : undefined;
  }

  value(path: KeyPath): unknown {
    let node: unknown = this.tree;
    for (const segment of path) node = isPlainObject(node) ? node[String(segment)] : undefined;
    return node;
  }

  /** A local path, absolute; relative ones resolve against the spec's folder. */
  localPath(path: KeyPath): string | undefined {
    const value = this.text(path);
    if (value === undefined) return undefined;
    if (value.startsWith('~')) {
      this.report(path, `"${value}": ~ is not expanded; write the full path or \${env:HOME}/...`);
      return undefined;
    }
    return resolvePath(this.specDir, value);
  }

  /** A path inside a mount: relative, normalised, and not leaving the mount. */
  inMountPath(path: KeyPath, bucket: string | undefined): string | undefined {
    const value = this.text(path);
    if (value === undefined) return undefined;
    const mount = bucket ? `the mount of bucket ${bucket}` : 'the mount';
    if (isAbsolute(value)) {
      this.report(path, `"${value}" must be relative to ${mount}, not an absolute path`);
      return undefined;
    }
    const normalised = posix.normalize(value.replace(/\\/g, '/')).replace(/\/+$/, '');
    if (normalised === '..' || normalised.startsWith('../')) {
      this.report(path, `"${value}" leaves ${mount} (..); paths in a mount must stay inside it`);
      return undefined;
    }
    if (normalised === '.' || normalised === '') {
      this.report(path, `"${value}" is the mount itself; name a path inside it`);
      return undefined;
    }
    return normalised;
  }

  /** The bucket a resource lives in: its `bucket:`, or the only bucket of the spec. */
  bucketOf(at: KeyPath, value: Entry): ResolvedBucket | undefined {
    const keys = Object.keys(this.buckets);
    const given = typeof value === 'string' ? undefined : value.bucket;
    if (typeof given === 'string') {
      const bucket = this.buckets[given];
      if (!bucket) this.report([...at, 'bucket'], `unknown bucket "${given}"; known: ${keys.join(', ') || '(none)'}`);
      return bucket;
    }
    if (given !== undefined) return undefined;
    if (keys.length === 1) return this.buckets[keys[0] as string];
    if (keys.length > 1) this.report(at, `bucket: is required because the spec has ${keys.length} buckets (${keys.join(', ')})`, 'key');
    return undefined;
  }

  /** Absolute path of `rel` in the bucket's mount. */
  mountTarget(bucket: ResolvedBucket, rel: string): string {
    // A bucket without a mount: the object's address (for messages), `s3://name/prefix/rel`.
    if (!bucket.mount) return bucket.name ? `s3://${posix.join(bucket.name, bucket.prefix ?? '', rel)}` : '';
    return bucket.mount.path ? posix.join(bucket.mount.path, rel) : '';
  }

  /** A claim on a path in a mount. */
  claimMount(claim: MountClaim): void {
    this.mountClaims.push(claim);
  }

  /**
   * A claim on a local path; the isolation check across environments sees it too, pointing at
   * the claim's key (`part: 'key'`) or its value.
   */
  claimLocal(claim: LocalClaim, part: Part = 'value'): void {
    this.localClaims.push(claim);
    this.facts.localPaths.push({ label: claim.address, path: claim.path, place: lazyPlace(() => this.place(claim.at, part)) });
  }
}
