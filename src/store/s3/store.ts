// A store over a bucket's S3 API (a bucket with no `mount:`): the same keys as through a mount,
// under the bucket's `prefix:`, so that s3fs and the API read each other's mirrors, manifests and
// bundles. An object is written whole (no temporary name and rename): a reader sees the old
// object or the new one.
//
// Folders: an object store has none. A key with objects under it (`key/...`) stats as a 'dir'
// (so does a folder marker `key/` that s3fs writes for mkdir); removing a folder key lists and
// deletes everything under it; pruneEmptyFolders does nothing.
//
// Mode and mtime: written as s3fs's own metadata (`x-amz-meta-mode`: the st_mode in decimal,
// file type bits included; `x-amz-meta-mtime`: seconds since the epoch), which costs no extra
// request and makes objects pushed through the API show their mode and mtime through an s3fs
// mount. `stat` (a HEAD) reads them back; `list` (ListObjectsV2 carries no metadata) reports
// 0644 and the object's LastModified. The manifest of a sync records both anyway and is what a
// restore uses.
//
// Local effects (the temporary file of a download, its mode, mtime and rename) go through the
// Host; the client reads a large file to upload, and writes a large download into the temporary
// file, itself (streamed), and uploadGrown hashes the file it is given in one read of its own.
//
// Requests: a download is one GET (no HEAD first: the answer's length picks memory or a streamed
// file, and a missing object is StoreMissing); an upload is one PUT, or a multipart upload above
// 8 MiB; an upload of a grown file copies its unchanged whole parts server-side (uploadGrown).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Host } from '../../host/types.js';
import { API_TRANSFERS, Slots } from '../limit.js';
import { normalizePrefix } from '../prefix.js';
import { tempPathFor } from '../temp-name.js';
import { HEAD_BYTES, StoreChanged, StoreConflict, StoreMissing, type KnownObject, type Store, type StoredFile, type StoredInfo, type StoreListing, type Transferred, type TransferOptions, type WriteOptions } from '../types.js';
import { DEFAULT_PART_SIZE, NoSuchKey, PreconditionFailed, type AppendResult, type S3Client } from './client.js';

/** Objects up to this size are read into memory (one read: its hash and its upload); larger ones are streamed. */
export const S3_SINGLE_READ_LIMIT = 16 * 1024 * 1024;


const S_IFREG = 0o100000;

export class S3Store implements Store {
  readonly prefix: string;
  /** Per mode: whether a file created with it has it (see ensureMode). */
  readonly #modeKept = new Map<number, boolean>();

  constructor(
    private readonly host: Host,
    private readonly client: S3Client,
    /** For messages: `s3://bucket/prefix/`. */
    private readonly label: string,
    prefix = '',
    /** Uploads and downloads in flight at once: their requests hold a slot, the local reads and writes around them do not. */
    private readonly transfers = new Slots(API_TRANSFERS),
  ) {
    this.prefix = normalizePrefix(prefix);
  }

  /** The object key of a store key. */
  objectKey(key: string): string {
    return `${this.prefix}${key.replace(/^\/+/, '')}`;
  }

  /** The object-key prefix of everything under a folder key. */
  private folderPrefix(key: string): string {
    const full = this.objectKey(key);
    return full === '' || full.endsWith('/') ? full : `${full}/`;
  }

  where(key: string): string {
    return `${this.label}${key ? `/${key}` : ''}`;
  }

  async stat(key: string): Promise<StoredInfo | null> {
    if (key === '' || key === '.') return { type: 'dir', size: 0, mode: 0o755, mtimeMs: 0 };
    const head = await this.client.head(this.objectKey(key));
    if (head) {
      const mode = Number(head.metadata.mode);
      const mtime = Number(head.metadata.mtime);
      return {
        type: 'file',
        size: head.size,
        mode: Number.isFinite(mode) && mode > 0 ? mode & 0o7777 : 0o644,
        mtimeMs: Number.isFinite(mtime) && mtime > 0 ? mtime * 1000 : Date.parse(head.lastModified) || 0,
      };
    }
    for await (const page of this.client.list(this.folderPrefix(key), { maxKeys: 1 })) {
      if (page.objects.length > 0) return { type: 'dir', size: 0, mode: 0o755, mtimeMs: 0 };
      break;
    }
    return null;
  }

  async readdir(key: string): Promise<string[]> {
    const base = this.folderPrefix(key);
    const names = new Set<string>();
    for await (const page of this.client.list(base, { delimiter: '/' })) {
      for (const object of page.objects) {
        const name = object.key.slice(base.length);
        if (name) names.add(name);
      }
      for (const prefix of page.prefixes) {
        const name = prefix.slice(base.length).replace(/\/$/, '');
        if (name) names.add(name);
      }
    }
    return [...names].sort();
  }

  async list(key: string, isExcluded: (relativePath: string) => boolean): Promise<StoreListing> {
    const base = this.folderPrefix(key);
    const excludedFolder = new Map<string, boolean>();
    const folderExcluded = (folder: string): boolean => {
      let known = excludedFolder.get(folder);
      if (known === undefined) {
        const slash = folder.lastIndexOf('/');
        known = (slash > 0 && folderExcluded(folder.slice(0, slash))) || isExcluded(folder);
        excludedFolder.set(folder, known);
      }
      return known;
    };
    const files: Record<string, StoredFile> = {};
    const paths: string[] = [];
    const found = new Map<string, StoredFile>();
    for (const object of await this.client.listAll(base)) {
      const relativePath = object.key.slice(base.length);
      if (!relativePath || relativePath.endsWith('/')) continue; // folder markers
      const slash = relativePath.lastIndexOf('/');
      if (slash > 0 && folderExcluded(relativePath.slice(0, slash))) continue;
      if (isExcluded(relativePath)) continue;
      paths.push(relativePath);
      found.set(relativePath, { size: object.size, mtimeMs: Date.parse(object.lastModified) || 0, mode: 0o644 });
    }
    for (const path of paths.sort()) files[path] = found.get(path)!;
    return { files, skipped: [] };
  }

  async read(key: string): Promise<Buffer> {
    try {
      return await this.client.get(this.objectKey(key));
    } catch (error) {
      if (error instanceof NoSuchKey) throw new StoreMissing(key, this.where(key));
      throw error;
    }
  }

  async readHead(key: string, bytes: number): Promise<Buffer> {
    if (bytes <= 0) return Buffer.alloc(0);
    try {
      return await this.client.get(this.objectKey(key), { range: { start: 0, end: bytes - 1 } });
    } catch (error) {
      // 416: an empty object has no byte 0.
      if ((error as { status?: number }).status === 416) return Buffer.alloc(0);
      throw error;
    }
  }

  /** One GET, hashed as it streams in (nothing written, so a read-only command may call it). */
  async hash(key: string): Promise<string> {
    return (await this.client.hashObject(this.objectKey(key))).sha256;
  }

  async write(key: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const metadata = metadataFor(options.mode ?? 0o644, this.host.now().getTime());
    await this.putChecked(key, body, { metadata, ...conditionsOf(options) }, options.ifAbsent ? () => new StoreConflict(key) : () => new StoreChanged(key));
  }

  /** One PUT; a condition that failed is `refused()`, unless an earlier attempt without an answer stored these very bytes. */
  private async putChecked(key: string, body: Buffer, options: Parameters<S3Client['put']>[2], refused: () => Error): Promise<{ etag: string }> {
    try {
      return await this.client.put(this.objectKey(key), body, options);
    } catch (error) {
      if (!(error instanceof PreconditionFailed)) throw error;
      if (error.ambiguous) {
        const there = await this.client.getTagged(this.objectKey(key)).catch(() => null);
        if (there && there.data.equals(body)) return { etag: there.etag };
      }
      throw refused();
    }
  }

  async upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    const source = await this.host.stat(localPath);
    if (!source || source.type !== 'file') throw new Error(`${localPath}: expected a regular file to upload, found ${source ? `a ${source.type}` : 'nothing'}`);
    const metadata = metadataFor(options.mode, options.mtimeMs);
    if (source.size <= S3_SINGLE_READ_LIMIT) {
      const data = await this.host.readFile(localPath);
      const { etag } = await this.transfers.use(() => this.putChecked(key, data, { metadata, ...conditionsOf(options) }, () => new StoreChanged(key)));
      return { size: data.length, sha256: createHash('sha256').update(data).digest('hex'), etag };
    }
    // Streamed: hashed before and after; a file that changed meanwhile is an error (retried by the next push).
    const before = await this.host.hashFile(localPath);
    const { etag } = await this.transfers.use(() => this.client.putLarge(this.objectKey(key), localPath, { partSize: DEFAULT_PART_SIZE, metadata }));
    await this.checkUnchanged(localPath, key, source.size, before);
    return { size: source.size, sha256: before, etag };
  }

  /**
   * The object must still have `base.etag` (every copied part is conditional on it), and the file
   * must start with base's bytes (hashed here, with the whole file, in one read): then the first
   * whole parts of the object are copied server-side and the rest of the file is sent. Anything
   * else is a whole upload. See appendByCopy for the parts (R2's equal sizes).
   */
  async uploadGrown(localPath: string, key: string, options: TransferOptions, base: KnownObject): Promise<Transferred> {
    const source = await this.host.stat(localPath);
    if (!source || source.type !== 'file') throw new Error(`${localPath}: expected a regular file to upload, found ${source ? `a ${source.type}` : 'nothing'}`);
    // Less than one part to copy: nothing to gain.
    if (base.size < DEFAULT_PART_SIZE || source.size <= base.size) return this.upload(localPath, key, options);
    const { prefix, whole } = await hashWithPrefix(localPath, base.size);
    if (prefix !== base.sha256) return this.upload(localPath, key, options);
    let appended: AppendResult;
    try {
      appended = await this.transfers.use(() =>
        this.client.appendByCopy(this.objectKey(key), base.size, localPath, {
          partSize: DEFAULT_PART_SIZE,
          metadata: metadataFor(options.mode, options.mtimeMs),
          sourceEtag: base.etag,
        }),
      );
    } catch (error) {
      // The object changed (or went) since it was known: its bytes are not base's.
      if (error instanceof PreconditionFailed || error instanceof NoSuchKey) return this.upload(localPath, key, options);
      throw error;
    }
    await this.checkUnchanged(localPath, key, source.size, whole);
    return { size: source.size, sha256: whole, etag: appended.etag, copied: appended.copiedBytes };
  }

  /** After a streamed upload: the file must still have the bytes that were hashed before it. */
  private async checkUnchanged(localPath: string, key: string, size: number, sha256: string): Promise<void> {
    const after = await this.host.stat(localPath);
    if (after?.size !== size || (await this.host.hashFile(localPath)) !== sha256) {
      throw new Error(`${localPath} changed while it was uploaded to ${this.where(key)}; the next push takes the newer state`);
    }
  }

  /**
   * One GET, no HEAD before it: a small object is buffered, a large one streamed and hashed as it
   * comes. The folder is made only when the write finds it missing (a restore writes many files
   * into few folders).
   */
  async download(key: string, localPath: string, options: TransferOptions): Promise<Transferred> {
    const temp = tempPathFor(localPath);
    /** Where the bytes were written: the temporary file, or the local path itself (in place). */
    let written = temp;
    let streamed = false;
    try {
      let copied: Transferred;
      try {
        // Created with its final mode so that a private file is never readable by others.
        const get = () => this.transfers.use(() => this.client.getObject(this.objectKey(key), temp, { bufferUpTo: S3_SINGLE_READ_LIMIT, fileMode: options.mode }));
        const got = await get().catch(async (error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
          await this.host.mkdir(dirname(localPath));
          return get();
        });
        copied = { size: got.size, sha256: got.sha256, etag: got.etag };
        streamed = got.data === null;
        if (got.data) {
          written = options.inPlace && (await this.createdWith(localPath, got.data, options.mode)) ? localPath : temp;
          if (written === temp) await this.writeMakingFolder(temp, got.data, options.mode);
          copied.head = Buffer.from(got.data.subarray(0, HEAD_BYTES));
        }
      } catch (error) {
        if (error instanceof NoSuchKey) throw new StoreMissing(key, this.where(key));
        throw error;
      }
      // A streamed (large) file is flushed now even when the caller flushes later: its pages are
      // written back while the other downloads go on, not all in the caller's final flush.
      if (!options.flushLater || streamed) await this.host.fsync(written);
      await this.ensureMode(written, options.mode);
      await this.host.utimes(written, options.mtimeMs);
      if (written === temp) await this.host.rename(temp, localPath);
      return copied;
    } catch (error) {
      await this.host.remove(written).catch(() => undefined);
      throw error;
    }
  }

  /** A download in place: false when a file is already there (it takes the temporary name and rename). */
  private async createdWith(path: string, data: Buffer, mode: number): Promise<boolean> {
    try {
      await this.writeMakingFolder(path, data, mode, true);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }

  /**
   * A file created with `mode` has it unless the process's umask takes bits away: learnt once per
   * mode from the first file (the umask does not change while persist runs), then a chmod only
   * where it does (a restore of many files saves a call each).
   */
  private async ensureMode(path: string, mode: number): Promise<void> {
    let kept = this.#modeKept.get(mode);
    if (kept === undefined) {
      kept = (await this.host.stat(path))?.mode === mode;
      this.#modeKept.set(mode, kept);
    }
    if (!kept) await this.host.chmod(path, mode);
  }

  private async writeMakingFolder(path: string, data: Buffer, mode: number, exclusive = false): Promise<void> {
    try {
      await this.host.writeFile(path, data, { mode, exclusive });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await this.host.mkdir(dirname(path));
      await this.host.writeFile(path, data, { mode, exclusive });
    }
  }

  async copy(from: string, to: string): Promise<void> {
    await this.client.copy(this.objectKey(from), this.objectKey(to));
  }

  async rename(from: string, to: string): Promise<void> {
    await this.client.copy(this.objectKey(from), this.objectKey(to));
    await this.client.delete(this.objectKey(from));
  }

  async remove(key: string): Promise<void> {
    if (key === '' && this.prefix === '') throw new Error(`refusing to remove every object of ${this.label}`);
    const keys = (await this.client.listAll(this.folderPrefix(key))).map((object) => object.key);
    keys.push(this.objectKey(key));
    await this.client.deleteMany(keys);
  }

  async pruneEmptyFolders(): Promise<void> {
    // An object store has no folders to leave empty.
  }

  /** Every write through the API is whole and in the store when it returns: nothing to wait for. */
  async flush(): Promise<null> {
    return null;
  }

  localPath(): null {
    return null;
  }

}

/** sha256 of a local file's first `length` bytes and of the whole file, in one read. */
async function hashWithPrefix(path: string, length: number): Promise<{ prefix: string; whole: string }> {
  const hash = createHash('sha256');
  let prefix: string | null = length === 0 ? hash.copy().digest('hex') : null;
  let position = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    const cut = length - position;
    if (prefix === null && cut <= chunk.length) {
      hash.update(chunk.subarray(0, cut));
      prefix = hash.copy().digest('hex');
      hash.update(chunk.subarray(cut));
    } else hash.update(chunk);
    position += chunk.length;
  }
  // A file shorter than `length` has no such prefix.
  return { prefix: prefix ?? '', whole: hash.digest('hex') };
}

function metadataFor(mode: number, mtimeMs: number): Record<string, string> {
  return { mode: String(S_IFREG | (mode & 0o7777)), mtime: String(Math.floor(mtimeMs / 1000)) };
}

/**
 * The conditions of a PUT: created only (`ifAbsent`, or an object known absent), or replacing only
 * the version known (WriteOptions.unchangedSince). A large file's multipart upload is sent
 * without them (docs/backends.md).
 */
function conditionsOf(options: { ifAbsent?: boolean; unchangedSince?: string | null }): { ifNoneMatch?: '*'; ifMatch?: string } {
  if (options.ifAbsent || options.unchangedSince === null) return { ifNoneMatch: '*' };
  return options.unchangedSince === undefined ? {} : { ifMatch: options.unchangedSince };
}
