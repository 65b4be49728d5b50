// A store over a folder: a FUSE mount of the bucket (s3fs, rclone, goofys) or the `local`
// backend's directory. Every call goes through the Host, so the read-only and recording wrappers
// apply. Writes go to a temporary name beside the target, are fsynced, then renamed: a reader
// (or a crash) never sees half an object. See docs/backends.md for what each backend guarantees.
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Host } from '../host/types.js';
import { walkFolder } from '../host/walk.js';
import { tempPathFor } from './temp-name.js';
import { StoreConflict, type Store, type StoreListing, type StoredInfo, type Transferred, type TransferOptions, type WriteOptions } from './types.js';

/**
 * Files up to this size are read in one call and written from that buffer, so the copy and its
 * hash come from one read of the source. Larger files are copied by the host and hashed from
 * the written copy.
 */
export const SINGLE_READ_LIMIT = 64 * 1024 * 1024;

/**
 * `strict`: mode and mtime must be set (local disk). `best-effort`: a file system that refuses
 * them (some FUSE backends) is tolerated; the manifest records them anyway.
 */
type Metadata = 'strict' | 'best-effort';

async function tolerate(metadata: Metadata, step: () => Promise<void>): Promise<void> {
  if (metadata === 'strict') return step();
  try {
    await step();
  } catch {
    // The backend keeps no modes or times; the manifest is the source of truth for both.
  }
}

/** Copy `from` to `to` through a temporary name; returns the size and sha256 of what was written. */
export async function copyIntoPlace(host: Host, from: string, to: string, options: TransferOptions & { metadata: Metadata }): Promise<Transferred> {
  const temp = tempPathFor(to);
  try {
    const source = await host.stat(from);
    if (!source || source.type !== 'file') throw new Error(`${from}: expected a regular file to copy, found ${source ? `a ${source.type}` : 'nothing'}`);
    await host.mkdir(dirname(to));
    let copied: Transferred;
    if (source.size <= SINGLE_READ_LIMIT) {
      const data = await host.readFile(from);
      // Strict (local) copies are created with their final mode so a private file is never readable by others.
      await host.writeFile(temp, data, options.metadata === 'strict' ? { mode: options.mode } : undefined);
      copied = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
    } else {
      await host.copyFile(from, temp);
      const written = await host.stat(temp);
      copied = { size: written?.size ?? 0, sha256: await host.hashFile(temp) };
    }
    await host.fsync(temp);
    // On s3fs every chmod is a request (a copy of the object): skip it when the mode is right already.
    if ((await host.stat(temp))?.mode !== options.mode) await tolerate(options.metadata, () => host.chmod(temp, options.mode));
    await tolerate(options.metadata, () => host.utimes(temp, options.mtimeMs));
    await host.rename(temp, to);
    return copied;
  } catch (error) {
    await host.remove(temp).catch(() => undefined);
    throw error;
  }
}

export class MountedStore implements Store {
  constructor(
    private readonly host: Host,
    /** The folder standing for the bucket's root (the mount path). */
    readonly root: string,
    /** The backend's wait for its cache to reach the store (rclone); none when writes land on return. */
    private readonly flusher?: (timeoutMs: number) => Promise<{ verified: number; waitedMs: number }>,
  ) {}

  async flush(timeoutMs: number): Promise<{ verified: number; waitedMs: number } | null> {
    return this.flusher ? this.flusher(timeoutMs) : null;
  }

  private path(key: string): string {
    return key === '' ? this.root : join(this.root, key);
  }

  where(key: string): string {
    return this.path(key);
  }

  async stat(key: string): Promise<StoredInfo | null> {
    return this.host.stat(this.path(key));
  }

  async readdir(key: string): Promise<string[]> {
    const info = await this.host.lstat(this.path(key));
    return info?.type === 'dir' ? this.host.readdir(this.path(key)) : [];
  }

  list(key: string, isExcluded: (relativePath: string) => boolean): Promise<StoreListing> {
    return walkFolder(this.host, this.path(key), isExcluded);
  }

  read(key: string): Promise<Buffer> {
    return this.host.readFile(this.path(key));
  }

  readHead(key: string, bytes: number): Promise<Buffer> {
    return this.host.readHead(this.path(key), bytes);
  }

  hash(key: string): Promise<string> {
    return this.host.hashFile(this.path(key));
  }

  async write(key: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    const path = this.path(key);
    const mode = options.mode === undefined ? {} : { mode: options.mode };
    // O_EXCL for ifAbsent: atomic on local disk; a FUSE mount has no compare-and-swap (the lease
    // closes that window).
    const attempt = () => (options.ifAbsent ? this.host.writeFile(path, data, { exclusive: true, ...mode }) : this.host.writeFileAtomic(path, data, mode));
    try {
      try {
        await attempt();
      } catch (error) {
        // The folder is made only when missing: on FUSE every mkdir is a request.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        await this.host.mkdir(dirname(path));
        await attempt();
      }
    } catch (error) {
      if (options.ifAbsent && (error as NodeJS.ErrnoException).code === 'EEXIST') throw new StoreConflict(key);
      throw error;
    }
  }

  upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    return copyIntoPlace(this.host, localPath, this.path(key), { ...options, metadata: 'best-effort' });
  }

  download(key: string, localPath: string, options: TransferOptions): Promise<Transferred> {
    return copyIntoPlace(this.host, this.path(key), localPath, { ...options, metadata: 'strict' });
  }

  async copy(from: string, to: string): Promise<void> {
    const temp = tempPathFor(this.path(to));
    try {
      await this.host.mkdir(dirname(temp));
      await this.host.copyFile(this.path(from), temp);
      await this.host.fsync(temp);
      const [source, copy] = await Promise.all([this.host.stat(this.path(from)), this.host.stat(temp)]);
      if (source?.size !== copy?.size) throw new Error(`copying ${this.path(from)} to ${this.path(to)} gave a different size`);
      await this.host.rename(temp, this.path(to));
    } finally {
      await this.host.remove(temp);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.host.mkdir(dirname(this.path(to)));
    await this.host.rename(this.path(from), this.path(to));
  }

  remove(key: string): Promise<void> {
    return this.host.remove(this.path(key));
  }

  async pruneEmptyFolders(root: string, removedKeys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of removedKeys) {
      for (let dir = dirname(key); dir !== '.'; dir = dirname(dir)) dirs.add(dir);
    }
    for (const dir of [...dirs].sort((a, b) => b.split('/').length - a.split('/').length)) {
      const absolute = this.path(join(root, dir));
      const info = await this.host.lstat(absolute);
      if (info?.type === 'dir' && (await this.host.readdir(absolute)).length === 0) await this.host.remove(absolute);
    }
  }

  localPath(key: string): string {
    return this.path(key);
  }

  /** A mount has no server-side copy of a part of a file: a whole upload. */
  uploadGrown(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    return this.upload(localPath, key, options);
  }
}
