// A store over a folder: a FUSE mount of the bucket (s3fs, rclone, goofys) or the `local`
// backend's directory. Every call goes through the Host, so the read-only and recording wrappers
// apply. Writes go to a temporary name beside the target, are fsynced, then renamed: a reader
// (or a crash) never sees half an object; only a key nothing trusts yet is written in place
// (WriteOptions.inPlace). See docs/backends.md for what each backend guarantees.
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Host } from '../host/types.js';
import { walkFolder } from '../host/walk.js';
import { isSparse } from '../host/sparse.js';
import { tempPathFor } from './temp-name.js';
import { StoreConflict, type Store, type StoreListing, type StoredInfo, type Transferred, type TransferOptions, type WriteOptions } from './types.js';

/**
 * Files up to this size are read in one call and written from that buffer, so the copy and its
 * hash come from one read of the source. Larger files are copied by the host; an upload hashes
 * its (local) source, a download its (local) copy: nothing is read back through a mount.
 */
export const SINGLE_READ_LIMIT = 64 * 1024 * 1024;

/**
 * `strict`: mode and mtime must be set (local disk). `best-effort`: the store keeps what it can;
 * the manifest records mode and mtime and a restore takes them from there, so an upload sets no
 * mtime (on s3fs each utimes is a server-side copy of the object).
 */
type Metadata = 'strict' | 'best-effort';

/** A file system that keeps no modes (some FUSE backends) refuses a chmod: */
function refusesModes(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}

/**
 * Write `data` to `path` created with `mode` (set through the open file: no chmod after the
 * close), and fsynced unless the backend's close already reports the upload (Backend.uploadsOnClose).
 */
async function writeWhole(host: Host, path: string, data: string | Buffer, mode: number | undefined, metadata: Metadata, durable = true): Promise<void> {
  try {
    await host.writeFile(path, data, { durable, ...(mode === undefined ? {} : { mode }) });
  } catch (error) {
    if (metadata === 'strict' || mode === undefined || !refusesModes(error)) throw error;
    await host.writeFile(path, data, { durable });
  }
}

/**
 * Copy `from` to `to` through a temporary name (or in place, see WriteOptions.inPlace); returns
 * the size and sha256 of what was written, computed from local bytes.
 */
export async function copyIntoPlace(host: Host, from: string, to: string, options: TransferOptions & { metadata: Metadata; uploadsOnClose?: boolean }): Promise<Transferred> {
  const inPlace = options.inPlace === true && options.metadata === 'best-effort';
  const target = inPlace ? to : tempPathFor(to);
  try {
    const source = await host.stat(from);
    if (!source || source.type !== 'file') throw new Error(`${from}: expected a regular file to copy, found ${source ? `a ${source.type}` : 'nothing'}`);
    await host.mkdir(dirname(to));
    const sparse = isSparse(source) ? { sparse: true } : undefined;
    let copied: Transferred;
    if (source.size <= SINGLE_READ_LIMIT && !sparse) {
      const data = await host.readFile(from);
      // Created with its final mode, so a private file is never readable by others, and no chmod follows.
      await writeWhole(host, target, data, options.mode, options.metadata, !options.uploadsOnClose);
      copied = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
    } else if (options.metadata === 'strict') {
      await host.copyFile(from, target, sparse); // holes stay holes where the folder can hold them
      await host.fsync(target);
      const written = await host.stat(target);
      copied = { size: written?.size ?? 0, sha256: await host.hashFile(target) };
      if (written?.mode !== options.mode) await host.chmod(target, options.mode);
    } else {
      // An upload's source is a local file that does not move (a push's private stage, a bundle
      // written beside): hashed there, and checked unchanged after the copy.
      const sha256 = await host.hashFile(from);
      await host.copyFile(from, target, sparse); // reports the error of closing the copy: the upload's on s3fs
      if (!options.uploadsOnClose) await host.fsync(target);
      const after = await host.stat(from);
      if (after?.size !== source.size || after.mtimeMs !== source.mtimeMs) throw new Error(`${from} changed while it was copied`);
      copied = { size: source.size, sha256 };
      if ((await host.stat(target))?.mode !== options.mode) {
        await host.chmod(target, options.mode).catch((error: unknown) => {
          if (!refusesModes(error)) throw error;
        });
      }
    }
    if (options.metadata === 'strict') await host.utimes(target, options.mtimeMs);
    if (!inPlace) await host.rename(target, to);
    return copied;
  } catch (error) {
    if (!inPlace) await host.remove(target).catch(() => undefined);
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
    private readonly backend: { uploadsOnClose: boolean } = { uploadsOnClose: false },
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
    // closes that window). In place: see WriteOptions.inPlace.
    const attempt = () =>
      options.ifAbsent
        ? this.host.writeFile(path, data, { exclusive: true, durable: true, ...mode })
        : options.inPlace
          ? writeWhole(this.host, path, data, options.mode, 'best-effort', !this.backend.uploadsOnClose)
          : this.host.writeFileAtomic(path, data, mode);
    try {
      await this.inFolder(path, attempt);
    } catch (error) {
      if (options.ifAbsent && (error as NodeJS.ErrnoException).code === 'EEXIST') throw new StoreConflict(key);
      throw error;
    }
  }

  upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    return copyIntoPlace(this.host, localPath, this.path(key), { ...options, metadata: 'best-effort', uploadsOnClose: this.backend.uploadsOnClose });
  }

  download(key: string, localPath: string, options: TransferOptions): Promise<Transferred> {
    return copyIntoPlace(this.host, this.path(key), localPath, { ...options, metadata: 'strict' });
  }

  async copy(from: string, to: string): Promise<void> {
    const temp = tempPathFor(this.path(to));
    let renamed = false;
    try {
      await this.inFolder(temp, () => this.host.copyFile(this.path(from), temp));
      // copyFile reports the error of closing the copy, which is the upload's on s3fs.
      if (!this.backend.uploadsOnClose) await this.host.fsync(temp);
      const [source, copy] = await Promise.all([this.host.stat(this.path(from)), this.host.stat(temp)]);
      if (source?.size !== copy?.size) throw new Error(`copying ${this.path(from)} to ${this.path(to)} gave a different size`);
      await this.host.rename(temp, this.path(to));
      renamed = true;
    } finally {
      // (after the rename there is nothing left to remove: on s3fs that would be more requests)
      if (!renamed) await this.host.remove(temp).catch(() => undefined);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await this.inFolder(this.path(to), () => this.host.rename(this.path(from), this.path(to)));
  }

  /** A write of `path` whose folder is made only when missing (on FUSE a mkdir of a folder that exists is requests too). */
  private async inFolder(path: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await this.host.mkdir(dirname(path));
      await write();
    }
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
