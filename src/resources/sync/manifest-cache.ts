// A local copy of a mirror's manifest shards, in the state folder, so that reading a manifest
// costs its small root plus the shards that changed since this machine last read or wrote them
// (at 100,000 files the shards are ~15 MiB; a 1-file push changes one of them).
//
// Trust: the root is always read from the store, and it records the sha256 of every shard. A
// copy is kept under the sha256 of its text and used only when its text hashes to what the root
// names, so a stale copy (another machine pushed since: the root names other hashes), a foreign
// one or a damaged one is never used; it only costs a download. The hash also makes an fsync
// needless: a copy is written in place, exclusively, and one that a crash left torn (or that
// another process is still writing) fails its hash, is removed and written again. One case
// hashes cannot show: a push interrupted after writing a shard and before its root leaves a shard
// newer than the root (manifest.ts). Such a push of this machine sets a marker here before its
// first shard write and clears it after the root: while it is set, every shard is read from the
// store, so the next plan sees the interrupted push as before. An interrupted push of another
// machine stays invisible until a root names its shards, like one killed before it wrote them
// (see docs/architecture.md).
//
// Parsed shards are also kept in memory for the life of the process: one apply (observe, the
// executor's re-check, the push's own check, the verification) downloads and parses each shard at
// most once, and reads only the root again.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Host } from '../../host/types.js';
import { stateDir } from '../../host/paths.js';
import { storeIdentity } from '../../lineage/generation.js';
import type { ResolvedBucket } from '../../spec/types.js';
import type { ManifestEntry } from './manifest.js';

const PUSHING = 'pushing';
/** Shard files `persist verify` found damaged in the store: the next push writes them again. */
const STORED_DAMAGED = 'stored-damaged.json';
const SUFFIX = '.json';

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Parsed shards by `<sha256>/<index>/<count>` (parsing checks a shard's paths against its index),
 * with the text while no copy is on disk yet (read by a read-only host: the plan that apply runs
 * first; the re-check on a writable host then keeps it).
 */
type ParsedShards = Map<string, { files: Record<string, ManifestEntry>; unsaved?: string | Buffer }>;

export class ShardCache {
  constructor(
    private readonly host: Host,
    /** `<state>/manifests/<id of the mirror>` */
    readonly dir: string,
    private readonly parsed: ParsedShards = new Map(),
  ) {}

  /** A push of this machine wrote shards and not (yet) the root that names them. */
  async pushing(): Promise<boolean> {
    return (await this.host.lstat(join(this.dir, PUSHING))) !== null;
  }

  /** Shard `index` of `count`, parsed, when a copy with this sha256 is at hand. */
  async get(hash: string, index: number, count: number, parse: (text: string) => Record<string, ManifestEntry>): Promise<Record<string, ManifestEntry> | null> {
    const memo = this.parsed.get(`${hash}/${index}/${count}`);
    if (memo) {
      if (memo.unsaved !== undefined && (await this.save(hash, memo.unsaved))) delete memo.unsaved;
      return memo.files;
    }
    const path = this.copyPath(hash);
    let data: Buffer;
    try {
      data = await this.host.readFile(path);
    } catch {
      return null;
    }
    if (sha256(data) !== hash) {
      await this.host.remove(path).catch(() => undefined); // so that put writes it again (read-only: it stays)
      return null;
    }
    const files = parse(data.toString('utf8'));
    this.parsed.set(`${hash}/${index}/${count}`, { files });
    return files;
  }

  /** Keep a shard read from (or written to) the store. Best effort: a read-only host (plan) keeps it in memory only. */
  async put(hash: string, index: number, count: number, data: string | Buffer, files: Record<string, ManifestEntry>): Promise<void> {
    const saved = await this.save(hash, data);
    this.parsed.set(`${hash}/${index}/${count}`, saved ? { files } : { files, unsaved: data });
  }

  /** Where the copy of the shard with this sha256 is kept. */
  private copyPath(hash: string): string {
    return join(this.dir, `${hash}${SUFFIX}`);
  }

  private async save(hash: string, data: string | Buffer): Promise<boolean> {
    const path = this.copyPath(hash);
    try {
      if (!(await this.host.lstat(path))) await this.inFolder(() => this.host.writeFile(path, data, { mode: 0o600, exclusive: true }));
      return true;
    } catch {
      return false; // read-only (plan, status) or a full disk: the next read downloads it again
    }
  }

  /** A write into the cache folder, which is made only when missing. */
  private async inFolder(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await this.host.mkdir(this.dir, { mode: 0o700 });
      await write();
    }
  }

  /** Forget every shard but these (the current root's): in memory, and on disk when `disk`. */
  async keepOnly(hashes: readonly string[], disk = true): Promise<void> {
    const kept = new Set(hashes);
    for (const key of this.parsed.keys()) if (!kept.has(key.slice(0, key.indexOf('/')))) this.parsed.delete(key);
    if (!disk) return;
    try {
      for (const name of await this.host.readdir(this.dir)) {
        if (name.endsWith(SUFFIX) && !kept.has(name.slice(0, -SUFFIX.length))) await this.host.remove(join(this.dir, name));
      }
    } catch {
      // no folder yet, or read-only
    }
  }

  /** Before a push writes its first shard (not best effort: without the marker the cache could hide an interrupted push). */
  async beginPush(): Promise<void> {
    await this.inFolder(() => this.host.writeFileAtomic(join(this.dir, PUSHING), `${this.host.pid()}\n`, { mode: 0o600 }));
  }

  /**
   * The size of the local copy of the shard with this sha256 (null: none). verify compares it with
   * the stored shard's size (a mismatch is then confirmed by reading and hashing the stored one).
   */
  async copySize(hash: string): Promise<number | null> {
    const info = await this.host.lstat(this.copyPath(hash)).catch(() => null);
    return info && info.type === 'file' ? info.size : null;
  }

  /** Shard file names (e.g. `0-of-1.json`) verify found damaged or missing in the store ([]: none). */
  async storedDamaged(): Promise<string[]> {
    try {
      const data = JSON.parse((await this.host.readFile(join(this.dir, STORED_DAMAGED))).toString('utf8')) as { shards?: unknown };
      return Array.isArray(data.shards) ? data.shards.filter((name): name is string => typeof name === 'string') : [];
    } catch {
      return [];
    }
  }

  /** Record (or, with [], clear) the shards verify found damaged in the store. */
  async markStoredDamaged(names: readonly string[]): Promise<void> {
    const path = join(this.dir, STORED_DAMAGED);
    if (names.length === 0) {
      if (await this.host.lstat(path)) await this.host.remove(path);
      return;
    }
    await this.inFolder(() => this.host.writeFileAtomic(path, `${JSON.stringify({ shards: [...names].sort() })}\n`, { mode: 0o600 }));
  }

  /** After the root is written (every shard verify found damaged was written again: ManifestWriter). */
  async endPush(hashes: readonly string[]): Promise<void> {
    await this.host.remove(join(this.dir, PUSHING));
    await this.markStoredDamaged([]);
    await this.keepOnly(hashes);
  }
}

/** The parsed shards of each mirror, for the life of the process (whatever host reads them). */
const parsedByMirror = new Map<string, ParsedShards>();

/** The cache of a mirror, keyed by the store's identity (bucket, endpoint, prefix, mirror key), not by how it is reached. */
export function shardCacheFor(host: Host, bucket: ResolvedBucket, mirrorKey: string): ShardCache {
  const id = sha256(JSON.stringify(storeIdentity(bucket, mirrorKey))).slice(0, 16);
  const dir = join(stateDir(host.env()), 'manifests', id);
  let parsed = parsedByMirror.get(dir);
  if (!parsed) {
    parsed = new Map();
    parsedByMirror.set(dir, parsed);
  }
  return new ShardCache(host, dir, parsed);
}
