// The one boundary between the resource modules and a bucket's files. Keys are relative POSIX
// paths from the bucket's root (its mount path today, or its prefix through the S3 API), so that
// a mirror, a manifest or a bundle has the same key whichever way the bucket is reached.
// Writes are whole: a reader sees the old object or the new one, never a part of it.

export type StoredType = 'file' | 'dir' | 'symlink' | 'other';

export interface StoredInfo {
  type: StoredType;
  size: number;
  /** Permission bits as the store keeps them (a FUSE backend may keep none). */
  mode: number;
  mtimeMs: number;
}

/** What a transfer wrote: computed from the bytes that went in, not read back. */
export interface Transferred {
  size: number;
  sha256: string;
  /** The object's ETag after the transfer, where the store has ETags (the S3 API). */
  etag?: string;
  /** Bytes copied within the store instead of sent (an upload of a file that only grew). */
  copied?: number;
  /** The first bytes of the content (up to HEAD_BYTES), where the transfer held them in memory. */
  head?: Buffer;
}

/** How many first bytes a transfer hands back as `head` (a file type's magic number fits). */
export const HEAD_BYTES = 100;

/** An object as a transfer left it: its size, the sha256 of its bytes, and the ETag it then had. */
export interface KnownObject {
  size: number;
  sha256: string;
  etag: string;
}

export interface StoredFile {
  size: number;
  mtimeMs: number;
  mode: number;
}

export interface StoreListing {
  /** Relative path (from the listed key) → file, in sorted order. */
  files: Record<string, StoredFile>;
  /** Relative paths of entries that are neither files nor folders (symlinks, special files). */
  skipped: string[];
}

export interface TransferOptions {
  mode: number;
  mtimeMs: number;
  /**
   * An upload: see WriteOptions.inPlace. A download: nothing is at the local path and nothing
   * trusts it until the caller says so (a restore into an empty folder, whose marker stays until
   * every file is in): a file read whole is created under its own name (exclusively: one that
   * appeared meanwhile takes the temporary name and rename) instead of a temporary name and a
   * rename. A process killed during the write may leave a partial file, which the resumed restore
   * finds by its hash.
   */
  inPlace?: boolean;
  /**
   * A download: the caller makes the local file system durable itself once all its downloads are
   * in (one syncfs for a restore of many files instead of an fsync each). A store may fsync anyway.
   */
  flushLater?: boolean;
  /** An upload: see WriteOptions.unchangedSince. */
  unchangedSince?: string | null;
}

export interface WriteOptions {
  mode?: number;
  /** Compare-and-swap room: write only if nothing exists under the key yet. */
  ifAbsent?: boolean;
  /**
   * The caller knows that no object is under the key and that nothing trusts the key until a
   * later commit names it (a sync's file that no manifest lists yet): a mounted store may then
   * write the final name directly instead of a temporary name and a rename (on s3fs 6 requests
   * instead of 14). A process killed during the write may leave a partial object under the key,
   * which nothing reads. See docs/backends.md, "Writes in place".
   */
  inPlace?: boolean;
  /**
   * The object's ETag as this machine last wrote or read it (null: there was none). Where the
   * store can check it in the same request (the S3 API, an object sent in one request), the write
   * happens only if the object is still so, and fails with StoreChanged otherwise: a write another
   * machine made since is never overwritten unawares (store/index.ts, fencedStore, decides what then).
   */
  unchangedSince?: string | null;
}

export interface Store {
  /** Where a key lives, for messages (`/data/moltbot/clawdbot/a.db`). */
  where(key: string): string;
  stat(key: string): Promise<StoredInfo | null>;
  /** Names directly under a folder key, sorted; empty when there is none. */
  readdir(key: string): Promise<string[]>;
  /** Every file under a folder key, recursively; `isExcluded` prunes whole folders. */
  list(key: string, isExcluded: (relativePath: string) => boolean): Promise<StoreListing>;
  /** A whole object; fails (with StoreMissing where the store can tell in the same request) when there is none. */
  read(key: string): Promise<Buffer>;
  /** The first `bytes` bytes (or all of a shorter object). */
  readHead(key: string, bytes: number): Promise<Buffer>;
  /** sha256 hex of an object's content. */
  hash(key: string): Promise<string>;
  /** Write a whole object. With `ifAbsent`, fails with StoreConflict when the key exists. */
  write(key: string, data: string | Buffer, options?: WriteOptions): Promise<void>;
  /** Copy a local file into the store (mode and mtime kept where the store can keep them). */
  upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred>;
  /**
   * Upload a file that may only have grown since `base` was stored under `key` (a transcript that
   * is appended to): where the store can copy within itself, the object still has base's ETag and
   * the file starts with base's bytes, that start is copied in the store and only the rest is
   * sent. Otherwise, and always for a store without server-side copies, a whole upload.
   */
  uploadGrown(localPath: string, key: string, options: TransferOptions, base: KnownObject): Promise<Transferred>;
  /**
   * Copy an object to a local file, created with its mode and mtime, renamed into place. Fails
   * (with StoreMissing where the store can tell in the same request) when there is no object.
   */
  download(key: string, localPath: string, options: TransferOptions): Promise<Transferred>;
  /** Copy an object within the store. */
  copy(from: string, to: string): Promise<void>;
  /** Move an object within the store (replacing `to`). */
  rename(from: string, to: string): Promise<void>;
  /** Remove an object, or a folder key with everything under it; no error when missing. */
  remove(key: string): Promise<void>;
  /** Remove folders left empty above removed keys (a mount shows folders; an object store has none). */
  pruneEmptyFolders(root: string, removedKeys: string[]): Promise<void>;
  /**
   * A local path through which git (or another program) can read the object as a file, or null
   * when the store is not a folder (the caller downloads it first).
   */
  localPath(key: string): string | null;
  /**
   * Wait (at most `timeoutMs`) until everything written so far is in the store itself, not in a
   * backend's local cache (rclone's write-back), checked against the store; throws naming the
   * reason otherwise. Immediate where writes are in the store when they return (s3fs, local).
   */
  flush(timeoutMs: number): Promise<{ verified: number; waitedMs: number } | null>;
}

/** A read found no object under the key. */
export class StoreMissing extends Error {
  constructor(
    readonly key: string,
    where: string = key,
  ) {
    super(`${where} does not exist`);
    this.name = 'StoreMissing';
  }
}

/** A conditional write found the key taken. */
/** A conditional write (WriteOptions.unchangedSince) found the object changed since. */
export class StoreChanged extends Error {
  constructor(readonly key: string) {
    super(`${key} changed in the store since this machine last wrote or read it`);
    this.name = 'StoreChanged';
  }
}

export class StoreConflict extends Error {
  constructor(readonly key: string) {
    super(`${key} already exists`);
    this.name = 'StoreConflict';
  }
}
