// Copying one file into place so that a reader never sees half of it: write a temporary name
// beside the destination, fsync, set mode and mtime, rename over the destination.
import { createHash } from 'node:crypto';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import type { ResolvedEnvironment } from '../../spec/types.js';
import { tempPathFor } from './tree.js';

/**
 * Files up to this size are read in one call and written from that buffer, so the copy and its
 * hash come from one snapshot of the source (a SQLite file being written is copied as it was at
 * that instant). Larger files are copied by the host and hashed from the written copy.
 */
export const SINGLE_READ_LIMIT = 64 * 1024 * 1024;

export interface CopiedFile {
  size: number;
  sha256: string;
}

export interface CopyOptions {
  mode: number;
  mtimeMs: number;
  /**
   * `strict`: mode and mtime must be set (local disk). `best-effort`: a file system that refuses
   * them (some FUSE backends) is tolerated; the manifest records them anyway.
   */
  metadata: 'strict' | 'best-effort';
}

async function tolerate(metadata: CopyOptions['metadata'], step: () => Promise<void>): Promise<void> {
  if (metadata === 'strict') return step();
  try {
    await step();
  } catch {
    // The backend keeps no modes or times; the manifest is the source of truth for both.
  }
}

/** Copy `from` to `to` through a temporary name; returns the size and sha256 of what was written. */
export async function copyIntoPlace(host: Host, from: string, to: string, options: CopyOptions): Promise<CopiedFile> {
  const temp = tempPathFor(to, host.pid());
  try {
    const source = await host.stat(from);
    if (!source || source.type !== 'file') throw new Error(`${from}: expected a regular file to copy, found ${source ? `a ${source.type}` : 'nothing'}`);
    let copied: CopiedFile;
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

/**
 * Defence against the failure persist exists to prevent: writing into (or restoring from) the
 * empty folder under a mount point whose mount is gone. The engine orders mounts first; this
 * checks again right before an action touches the mount (`local` buckets have no mount).
 */
export async function assertMountLive(address: string, bucketKey: string, env: ResolvedEnvironment, host: Host): Promise<void> {
  const bucket = env.buckets[bucketKey];
  if (!bucket || bucket.mount.backend === 'local') return;
  const mounts = await host.mounts();
  if (!mounts.some((m) => m.mountPoint === bucket.mount.path)) {
    throw new ActionError(`${address}: nothing is mounted at ${bucket.mount.path}; refusing to touch the bucket's files (apply mount.${bucketKey} first)`);
  }
}
