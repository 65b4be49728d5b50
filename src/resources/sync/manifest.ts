// The manifest a sync keeps in its mirror. It lists every file persist wrote into the mirror
// (size, mtime, sha256, mode) and is what plan compares the local folder with, so that observing
// a sync reads a few small objects from the bucket instead of every file. It is also the source
// of truth for the modes and mtimes a restore gives back (FUSE backends may not keep either).
//
// Layout (version 2), so that a push rewrites bytes in proportion to what changed:
//   <mirror>/.persist-sync.json                the root: pushedAt, file count, and per shard its
//                                              file count and the sha256 of its text
//   <mirror>/.persist-sync/<i>-of-<n>.json     shard i of n: the entries of the paths whose
//                                              FNV-1a hash is i modulo n (every shard exists)
// The shard count n (a power of two, at most 64) is chosen from the file count when the mirror is
// first written and changed only when the count grows or shrinks by a factor of four; new shards
// get new names, so the old set stays readable until the root names the new one.
//
// Crash safety (see push in ../resources/sync.ts): a shard is written (atomically) only after the
// files it lists are in the mirror, removed files are deleted only after every shard and the root
// are written, and the root is written last. A shard newer than the root (an interrupted push) is
// therefore still the truth: it is read as found, and the manifest is marked `interrupted` so that
// the next push finishes the root. Version 1 (one file holding every entry) is still read, and a
// push converts it.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PersistError } from '../../errors.js';
import { StoreMissing, type Store } from '../../store/types.js';
import { parseStamp, type LineageStamp } from '../../lineage/generation.js';
import type { ShardCache } from './manifest-cache.js';

export const MANIFEST_NAME = '.persist-sync.json';
export const SHARD_DIR_NAME = '.persist-sync';
/** Inside the shard folder: the kept generations (./generations.ts). */
export const GENERATIONS_DIR_NAME = 'generations';

/** Shard sizing: about this many entries per shard, and never more shards than this (reads on FUSE are one request each). */
const ENTRIES_PER_SHARD = 200;
export const MAX_SHARDS = 64;
/** The shard count changes only when the ideal one is this factor away from it. */
const RESHARD_FACTOR = 4;

export interface ManifestEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
  /** Permission bits, e.g. 0o644 (stored as a JSON number). */
  mode: number;
  /** Another path of the same file (a hard link): no object of its own, restored as a link to it (hardlinks.ts). */
  link?: string;
  /** The file has holes: restored sparse (sparse.ts). */
  sparse?: true;
}

/** The optional fields of an entry as read (anything else is dropped). */
function entryExtras(entry: Record<string, unknown>): Pick<ManifestEntry, 'link' | 'sparse'> {
  const extras: Pick<ManifestEntry, 'link' | 'sparse'> = {};
  if (typeof entry.link === 'string' && isSafeRelativePath(entry.link)) extras.link = entry.link;
  if (entry.sparse === true) extras.sparse = true;
  return extras;
}

/** How the entries were stored when read: a push rewrites only shards whose text changes. */
export type ManifestStorage =
  | { version: 1 }
  | {
      version: 2;
      /** sha256 of each shard's text as read, by shard index. */
      shardHashes: string[];
      /** Shards whose text differs from what the root records: a push was interrupted after writing them. */
      interrupted: number[];
    };

export interface SyncManifest {
  /** Relative `/`-separated path → entry. */
  files: Record<string, ManifestEntry>;
  /** When the mirror was last pushed (ISO 8601). */
  pushedAt: string;
  /** When the mirror was last restored from; persist itself never writes it (see state.ts). */
  restoredAt?: string;
  storage: ManifestStorage;
  /** The generation the root records (absent: written before lineage existed; see ./generations.ts). */
  lineage?: LineageStamp;
}

/** The manifest is unreadable or not in the expected shape. */
export class ManifestError extends PersistError {}

export function manifestPath(mirrorDir: string): string {
  return join(mirrorDir, MANIFEST_NAME);
}

export function shardDirPath(mirrorDir: string): string {
  return join(mirrorDir, SHARD_DIR_NAME);
}

export function shardFileName(index: number, count: number): string {
  const width = String(count - 1).length;
  return `${String(index).padStart(width, '0')}-of-${count}.json`;
}

/** FNV-1a (32 bits) of the path's UTF-8 bytes, modulo the shard count: fast, stable, well spread. */
export function shardOf(path: string, count: number): number {
  let hash = 0x811c9dc5;
  // ASCII paths (nearly all) byte by byte without encoding them first: a plan reads 100,000 of them.
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code > 0x7f) return fnvOfUtf8(path, count);
    hash = Math.imul(hash ^ code, 0x01000193) >>> 0;
  }
  return hash % count;
}

function fnvOfUtf8(path: string, count: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(path, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash % count;
}

/** The shard count for a mirror of `files` files: a power of two giving about ENTRIES_PER_SHARD each. */
export function idealShardCount(files: number): number {
  let count = 1;
  while (count < MAX_SHARDS && count * ENTRIES_PER_SHARD < files) count *= 2;
  return count;
}

/** Keep the current shard count unless the file count moved far enough to be worth a rewrite of every shard. */
export function chooseShardCount(current: number | null, files: number): number {
  const ideal = idealShardCount(files);
  if (current === null || ideal >= current * RESHARD_FACTOR || ideal * RESHARD_FACTOR <= current) return ideal;
  return current;
}

function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

function isEntry(value: unknown): value is ManifestEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    Number.isInteger(entry.size) &&
    (entry.size as number) >= 0 &&
    typeof entry.mtimeMs === 'number' &&
    Number.isFinite(entry.mtimeMs) &&
    typeof entry.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(entry.sha256) &&
    Number.isInteger(entry.mode) &&
    (entry.mode as number) >= 0 &&
    (entry.mode as number) <= 0o7777
  );
}

/** No empty, `.` or `..` part, not absolute: it stays inside the folder. */
const UNSAFE_PATH = /(?:^|\/)\.{0,2}(?:\/|$)/;

function isSafeRelativePath(path: string): boolean {
  return path !== '' && !UNSAFE_PATH.test(path);
}

function isIsoDate(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function parseJsonObject(text: string, source: string, expected: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    // A web page where a manifest should be: most likely every answer of the store is one (an endpoint that is not S3).
    const page = /^\s*</.test(text)
      ? `: it reads as an HTML or XML page (${JSON.stringify(text.trim().slice(0, 40))}…), not a manifest; if every object of the store reads so, the bucket's endpoint is not an S3 API (persist doctor checks it)`
      : ` (${(error as Error).message})`;
    throw new ManifestError(`${source}: not valid JSON${page}; ${expected}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ManifestError(`${source}: ${expected}`);
  return data as Record<string, unknown>;
}

/** Checked entries of a `files` object; `accept` may refuse a path (e.g. one in the wrong shard). */
function parseEntries(value: unknown, source: string, expected: string, accept?: (path: string) => string | null): Record<string, ManifestEntry> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ManifestError(`${source}: "files" must be an object; ${expected}`);
  const files: Record<string, ManifestEntry> = {};
  for (const [path, entry] of Object.entries(value as Record<string, unknown>)) {
    // A path escaping the mirror would let a hand-edited manifest make restore write anywhere.
    if (!isSafeRelativePath(path)) throw new ManifestError(`${source}: file path ${JSON.stringify(path)} must be relative and stay inside the folder`);
    if (!isEntry(entry)) throw new ManifestError(`${source}: files[${JSON.stringify(path)}] must be {size, mtimeMs, sha256 (64 hex digits), mode}`);
    const refusal = accept?.(path);
    if (refusal) throw new ManifestError(`${source}: file path ${JSON.stringify(path)} ${refusal}`);
    // The parsed object itself (a plan reads 100,000 of them); only a hard link's name needs a check.
    if (entry.link !== undefined && !entryExtras(entry as unknown as Record<string, unknown>).link) delete entry.link;
    files[path] = entry;
  }
  return files;
}

function checkDates(doc: Record<string, unknown>, source: string, expected: string): void {
  if (!isIsoDate(doc.pushedAt)) throw new ManifestError(`${source}: "pushedAt" must be an ISO date; ${expected}`);
  if (doc.restoredAt !== undefined && !isIsoDate(doc.restoredAt)) throw new ManifestError(`${source}: "restoredAt" must be an ISO date`);
}

const V1_EXPECTED = 'expected {"version": 1, "files": {<path>: {size, mtimeMs, sha256, mode}}, "pushedAt": <ISO date>}';
const ROOT_EXPECTED = 'expected {"version": 2, "pushedAt": <ISO date>, "files": <count>, "shards": [{"files": <count>, "sha256": <hex>}, ...]}';
const SHARD_EXPECTED = 'expected {"version": 2, "files": {<path>: {size, mtimeMs, sha256, mode}}}';

/** The root of a version-2 manifest. */
export interface ManifestRoot {
  version: 2;
  pushedAt: string;
  restoredAt?: string;
  /** Files in all shards. */
  files: number;
  /** By shard index. */
  shards: { files: number; sha256: string }[];
  /** The generation this root makes current (./generations.ts). */
  lineage?: LineageStamp;
}

/** A manifest file's text: version 1 (every entry) or the root of version 2. */
export function parseManifestFile(text: string, source: string): { version: 1; manifest: SyncManifest } | { version: 2; root: ManifestRoot } {
  const doc = parseJsonObject(text, source, ROOT_EXPECTED);
  if (doc.version === 1) {
    checkDates(doc, source, V1_EXPECTED);
    const manifest: SyncManifest = { files: parseEntries(doc.files, source, V1_EXPECTED), pushedAt: doc.pushedAt as string, storage: { version: 1 } };
    if (doc.restoredAt !== undefined) manifest.restoredAt = doc.restoredAt as string;
    return { version: 1, manifest };
  }
  if (doc.version !== 2) throw new ManifestError(`${source}: unsupported version ${JSON.stringify(doc.version)}; expected 1 or 2`);
  checkDates(doc, source, ROOT_EXPECTED);
  if (!Number.isInteger(doc.files) || (doc.files as number) < 0) throw new ManifestError(`${source}: "files" must be a count; ${ROOT_EXPECTED}`);
  const shards = doc.shards;
  if (!Array.isArray(shards) || shards.length < 1 || shards.length > MAX_SHARDS) {
    throw new ManifestError(`${source}: "shards" must list 1 to ${MAX_SHARDS} shards; ${ROOT_EXPECTED}`);
  }
  const parsed = shards.map((shard: unknown, index) => {
    const record = (typeof shard === 'object' && shard !== null ? shard : {}) as Record<string, unknown>;
    if (!Number.isInteger(record.files) || (record.files as number) < 0 || typeof record.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(record.sha256)) {
      throw new ManifestError(`${source}: shards[${index}] must be {"files": <count>, "sha256": <64 hex digits>}`);
    }
    return { files: record.files as number, sha256: record.sha256 };
  });
  const root: ManifestRoot = { version: 2, pushedAt: doc.pushedAt as string, files: doc.files as number, shards: parsed };
  if (doc.restoredAt !== undefined) root.restoredAt = doc.restoredAt as string;
  if (doc.lineage !== undefined) {
    const lineage = parseStamp(doc.lineage);
    if (!lineage) throw new ManifestError(`${source}: "lineage" must be {"generation", "parent", "time", "machine", "host"}`);
    root.lineage = lineage;
  }
  return { version: 2, root };
}

/** A shard's text; every path must belong to shard `index` of `count`. */
export function parseShard(text: string, source: string, index: number, count: number): Record<string, ManifestEntry> {
  const doc = parseJsonObject(text, source, SHARD_EXPECTED);
  if (doc.version !== 2) throw new ManifestError(`${source}: unsupported version ${JSON.stringify(doc.version)}; ${SHARD_EXPECTED}`);
  return parseEntries(doc.files, source, SHARD_EXPECTED, (path) => (shardOf(path, count) === index ? null : `belongs in shard ${shardFileName(shardOf(path, count), count)}`));
}

/** Stable text, one entry a line, sorted by path: equal shards are equal bytes. */
export function serializeShard(files: Record<string, ManifestEntry>): string {
  const lines = Object.keys(files)
    .sort()
    .map((path) => {
      const e = files[path]!;
      return `${JSON.stringify(path)}:${JSON.stringify({ size: e.size, mtimeMs: e.mtimeMs, sha256: e.sha256, mode: e.mode, ...entryExtras(e as unknown as Record<string, unknown>) })}`;
    });
  return lines.length === 0 ? '{"version":2,"files":{}}\n' : `{"version":2,"files":{\n${lines.join(',\n')}\n}}\n`;
}

export function serializeRoot(root: ManifestRoot): string {
  const head: Record<string, unknown> = { version: 2, pushedAt: root.pushedAt };
  if (root.restoredAt !== undefined) head.restoredAt = root.restoredAt;
  head.files = root.files;
  if (root.lineage !== undefined) head.lineage = root.lineage;
  const shards = root.shards.map((shard) => JSON.stringify({ files: shard.files, sha256: shard.sha256 }));
  return `${JSON.stringify(head).slice(0, -1)},"shards":[\n${shards.join(',\n')}\n]}\n`;
}

/**
 * The manifest file of the mirror at `mirrorKey`, parsed (version 1 whole, version 2 its root), or
 * null when there is none. Read first: one request where it is there (every plan, every push but
 * the first); where the read cannot say that nothing is there (a mount), a stat says why it failed.
 */
export async function readManifestFile(store: Store, mirrorKey: string): Promise<ReturnType<typeof parseManifestFile> | null> {
  const key = manifestPath(mirrorKey);
  const path = store.where(key);
  let text: string;
  try {
    text = (await store.read(key)).toString('utf8');
  } catch (error) {
    const info = error instanceof StoreMissing ? null : await store.stat(key);
    if (!info) return null;
    if (info.type !== 'file') throw new ManifestError(`${path}: expected a file, found a ${info.type}`);
    throw error;
  }
  return parseManifestFile(text, path);
}

/**
 * The mirror's manifest, or null when it has none. Throws ManifestError when it is unreadable.
 * With a cache (manifest-cache.ts), only the root and the shards the cache lacks are read from
 * the store.
 */
export async function readManifest(store: Store, mirrorKey: string, cache?: ShardCache): Promise<SyncManifest | null> {
  const parsed = await readManifestFile(store, mirrorKey);
  if (!parsed) return null;
  if (parsed.version === 1) return parsed.manifest;
  const path = store.where(manifestPath(mirrorKey));

  const { root } = parsed;
  const count = root.shards.length;
  // An interrupted push of this machine: every shard from the store, to see what it left.
  const cached = cache && !(await cache.pushing()) ? cache : undefined;
  // Concurrently: on FUSE every shard is a request of its own.
  const shards = await Promise.all(
    root.shards.map(async (recorded, index) => {
      const shardKey = join(shardDirPath(mirrorKey), shardFileName(index, count));
      const shardPath = store.where(shardKey);
      const copy = await cached?.get(recorded.sha256, index, count, (text) => parseShard(text, shardPath, index, count));
      if (copy) return { hash: recorded.sha256, files: copy };
      let data: Buffer;
      try {
        data = await store.read(shardKey);
      } catch (error) {
        const code = error instanceof StoreMissing ? 'no such object' : (error as NodeJS.ErrnoException).code;
        if (code === 'no such object' || code === 'ENOENT' || code === 'EISDIR') throw new ManifestError(`${shardPath}: missing (${code}); ${path} lists ${root.shards[index]!.files} files in it`);
        throw error;
      }
      const hash = sha256(data);
      const files = parseShard(data.toString('utf8'), shardPath, index, count);
      await cache?.put(hash, index, count, data, files);
      return { hash, files, downloaded: true };
    }),
  );
  // Copies of shards no root names any more go (on disk only when this read brought new ones).
  await cache?.keepOnly([...root.shards.map((shard) => shard.sha256), ...shards.map((shard) => shard.hash)], shards.some((shard) => 'downloaded' in shard));
  const files: Record<string, ManifestEntry> = {};
  for (const shard of shards) Object.assign(files, shard.files);
  const manifest: SyncManifest = {
    files,
    pushedAt: root.pushedAt,
    storage: {
      version: 2,
      shardHashes: shards.map((shard) => shard.hash),
      interrupted: shards.flatMap((shard, index) => (shard.hash === root.shards[index]!.sha256 ? [] : [index])),
    },
  };
  if (root.restoredAt !== undefined) manifest.restoredAt = root.restoredAt;
  if (root.lineage !== undefined) manifest.lineage = root.lineage;
  return manifest;
}

/**
 * Writes a manifest in the order that keeps it truthful: the caller puts every shard (each
 * only once the files it lists are in the mirror), then commits the root. A shard whose text
 * is unchanged is not written again.
 */
export class ManifestWriter {
  readonly shardCount: number;
  private readonly previousHashes: (string | undefined)[];
  private readonly written: ({ files: number; sha256: string } | undefined)[];
  /** Called with a shard's key right before it is overwritten or removed (history keeps the old one). */
  beforeReplace: ((key: string) => Promise<void>) | null = null;

  /** The shards written (text and entries), kept in the local cache once the root names them. */
  private readonly texts: ({ text: string; files: Record<string, ManifestEntry> } | undefined)[];
  private pushMarked = false;
  /** Shard names verify found damaged in the store (read once, from the cache). */
  private storedDamaged: Set<string> | undefined;

  /** `previous`: the manifest as read (null when there is none); `files`: how many files the new one will list. */
  constructor(
    private readonly store: Store,
    private readonly mirrorKey: string,
    private readonly previous: SyncManifest | null,
    files: number,
    private readonly cache?: ShardCache,
  ) {
    const previousCount = previous?.storage.version === 2 ? previous.storage.shardHashes.length : null;
    this.shardCount = chooseShardCount(previousCount, files);
    this.previousHashes = previous?.storage.version === 2 && previousCount === this.shardCount ? previous.storage.shardHashes : [];
    this.written = new Array<undefined>(this.shardCount).fill(undefined);
    this.texts = new Array<undefined>(this.shardCount).fill(undefined);
  }

  shardOf(path: string): number {
    return shardOf(path, this.shardCount);
  }

  /** Write shard `index` (atomically) unless the mirror holds the same text already. Returns whether it wrote. */
  async putShard(index: number, files: Record<string, ManifestEntry>): Promise<boolean> {
    for (const path of Object.keys(files)) {
      if (this.shardOf(path) !== index) throw new Error(`internal error: ${path} put in shard ${index} of ${this.shardCount}`);
    }
    const text = serializeShard(files);
    const hash = sha256(text);
    this.written[index] = { files: Object.keys(files).length, sha256: hash };
    const name = shardFileName(index, this.shardCount);
    // A shard `persist verify` found damaged in the store (manifest-cache.ts) is written again even
    // when its text is unchanged; its damaged bytes are then not kept as the old generation's (the
    // text written back is the one that generation's root records).
    this.storedDamaged ??= new Set(this.cache ? await this.cache.storedDamaged() : []);
    const repair = this.storedDamaged.has(name);
    if (this.previousHashes[index] === hash && !repair) return false;
    const key = join(shardDirPath(this.mirrorKey), name);
    if (this.beforeReplace && this.previousHashes[index] !== undefined && !(repair && this.previousHashes[index] === hash)) await this.beforeReplace(key);
    if (this.cache && !this.pushMarked) {
      await this.cache.beginPush();
      this.pushMarked = true;
    }
    await this.store.write(key, text, { mode: 0o644 });
    this.texts[index] = { text, files };
    return true;
  }

  /** Write the root, then remove shard files it does not name (another shard count, or left by a crash). */
  async commit(pushedAt: string, restoredAt?: string, lineage?: LineageStamp): Promise<void> {
    const shards = this.written.map((shard, index) => {
      if (!shard) throw new Error(`internal error: shard ${index} of ${this.shardCount} was not put before the commit`);
      return shard;
    });
    const root: ManifestRoot = { version: 2, pushedAt, files: shards.reduce((sum, shard) => sum + shard.files, 0), shards };
    if (restoredAt !== undefined) root.restoredAt = restoredAt;
    if (lineage !== undefined) root.lineage = lineage;
    await this.store.write(manifestPath(this.mirrorKey), serializeRoot(root), { mode: 0o644 });
    if (this.cache) {
      for (const [index, shard] of this.texts.entries()) if (shard) await this.cache.put(shards[index]!.sha256, index, this.shardCount, shard.text, shard.files);
      await this.cache.endPush(shards.map((shard) => shard.sha256));
    }

    // A listing costs a request on FUSE: only when leftovers are possible.
    const sameLayout = this.previousHashes.length > 0;
    const interrupted = this.previous?.storage.version === 2 && this.previous.storage.interrupted.length > 0;
    if (sameLayout && !interrupted) return;
    const dir = shardDirPath(this.mirrorKey);
    const current = new Set(shards.map((_, index) => shardFileName(index, this.shardCount)));
    for (const name of await this.store.readdir(dir)) {
      // The folder also holds the history (./generations.ts), which is not a shard.
      if (current.has(name) || name === GENERATIONS_DIR_NAME) continue;
      if (this.beforeReplace) await this.beforeReplace(join(dir, name));
      await this.store.remove(join(dir, name));
    }
  }
}

/**
 * A first push (into a mirror without a root) writes this marker into the shard folder before
 * any file, and its commit removes it with the other leftovers. A push writes the files no
 * manifest lists in place (WriteOptions.inPlace), so a first push killed midway may leave a
 * partial object in the mirror: while the marker is there, only the files its shards list (each
 * shard written after its files were in the store) are trusted; see `unfinishedFirstPush`.
 */
export const FIRST_PUSH_MARKER = 'first-push.json';

/** `machine`: the id of the machine pushing (lineage: its own unfinished push is one it has seen). */
export async function markFirstPush(store: Store, mirrorKey: string, startedAt: string, machine: string): Promise<void> {
  await store.write(join(shardDirPath(mirrorKey), FIRST_PUSH_MARKER), `${JSON.stringify({ version: 2, startedAt, machine })}\n`, { mode: 0o644 });
}

/**
 * For a mirror without a root: null when no first push of persist was left unfinished in it,
 * else the entries its shards list (the only files of the mirror that are known whole) and the
 * machine that pushed.
 */
export async function unfinishedFirstPush(store: Store, mirrorKey: string): Promise<{ files: Record<string, ManifestEntry>; machine?: string } | null> {
  const dir = shardDirPath(mirrorKey);
  const marker = join(dir, FIRST_PUSH_MARKER);
  if (!(await store.stat(marker))) return null;
  let machine: unknown;
  try {
    machine = (JSON.parse((await store.read(marker)).toString('utf8')) as { machine?: unknown }).machine;
  } catch {
    machine = undefined; // a marker cut off while written: who pushed is unknown
  }
  const files: Record<string, ManifestEntry> = {};
  for (const name of await store.readdir(dir)) {
    const match = /^(\d+)-of-(\d+)\.json$/.exec(name);
    if (!match) continue;
    const key = join(dir, name);
    Object.assign(files, parseShard((await store.read(key)).toString('utf8'), store.where(key), Number(match[1]), Number(match[2])));
  }
  return typeof machine === 'string' ? { files, machine } : { files };
}

/** Write a whole manifest at once (a mirror that had none): every shard, then the root. */
export async function writeManifest(store: Store, mirrorKey: string, files: Record<string, ManifestEntry>, pushedAt: string, previous: SyncManifest | null = null, cache?: ShardCache): Promise<void> {
  const writer = new ManifestWriter(store, mirrorKey, previous, Object.keys(files).length, cache);
  const shards: Record<string, ManifestEntry>[] = Array.from({ length: writer.shardCount }, () => ({}));
  for (const [path, entry] of Object.entries(files)) shards[writer.shardOf(path)]![path] = entry;
  for (const [index, shard] of shards.entries()) await writer.putShard(index, shard);
  await writer.commit(pushedAt, previous?.restoredAt);
}
