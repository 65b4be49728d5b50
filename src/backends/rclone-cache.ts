// rclone 1.60's VFS write cache, read from the outside: which files a daemon (alive or dead)
// holds that never reached the store. rclone keeps, per cached file, a data file under
// `<cache>/vfs/<remote>/<bucket>/<key>` and a JSON metadata file under
// `<cache>/vfsMeta/<remote>/<bucket>/<key>` (`{"Size", "ModTime", "Rs": [{"Pos","Size"}], "Dirty"}`);
// `Dirty: true` means written and not uploaded yet. The remote's folder is named after the remote,
// plus `{hash}` of its configuration when the configuration came from environment variables
// (persist before the config file): see docs/backends.md.
import { join } from 'node:path';
import type { Host } from '../host/types.js';
import { walkFolder } from '../host/walk.js';

export interface DirtyItem {
  /** The remote's folder name in the cache (`persist`, or `persist{Pm0r5}` of an older config). */
  remote: string;
  /** The bucket's folder name (the bucket). */
  bucket: string;
  /** The object's key, relative to the bucket. */
  key: string;
  size: number;
  /** When rclone last changed it (its ModTime), ms since the epoch. */
  modTimeMs: number;
  /** Whether the data file holds every byte (rclone can cache a file in parts). */
  complete: boolean;
  metaPath: string;
  dataPath: string;
}

interface ItemMeta {
  Size?: number;
  ModTime?: string;
  Rs?: { Pos?: number; Size?: number }[];
  Dirty?: boolean;
}

function coversWhole(ranges: ItemMeta['Rs'], size: number): boolean {
  if (size === 0) return true;
  const sorted = [...(ranges ?? [])].map((r) => ({ pos: r.Pos ?? 0, size: r.Size ?? 0 })).sort((a, b) => a.pos - b.pos);
  let end = 0;
  for (const range of sorted) {
    if (range.pos > end) return false;
    end = Math.max(end, range.pos + range.size);
  }
  return end >= size;
}

async function listNames(host: Host, dir: string): Promise<string[]> {
  const info = await host.lstat(dir);
  if (!info || info.type !== 'dir') return [];
  return host.readdir(dir);
}

/** A cached item whose metadata does not parse (rclone killed while it rewrote it): dirty or not, nobody can tell. */
export interface UnreadableItem {
  remote: string;
  bucket: string;
  key: string;
  metaPath: string;
  dataPath: string;
}

/**
 * Every dirty (written, not uploaded) item in a cache folder, of any remote and bucket. Read-only.
 * An item whose metadata does not parse is skipped (a live daemon may be rewriting it); with
 * `unreadable`, those that have a data file are also added there (a dead daemon's are final).
 */
export async function dirtyItems(host: Host, cacheDir: string, unreadable?: UnreadableItem[]): Promise<DirtyItem[]> {
  const items: DirtyItem[] = [];
  const metaRoot = join(cacheDir, 'vfsMeta');
  for (const remote of await listNames(host, metaRoot)) {
    for (const bucket of await listNames(host, join(metaRoot, remote))) {
      const bucketMeta = join(metaRoot, remote, bucket);
      if ((await host.lstat(bucketMeta))?.type !== 'dir') continue;
      const walk = await walkFolder(host, bucketMeta, () => false);
      for (const key of Object.keys(walk.files)) {
        const metaPath = join(bucketMeta, key);
        const dataPath = join(cacheDir, 'vfs', remote, bucket, key);
        let meta: ItemMeta;
        try {
          meta = JSON.parse((await host.readFile(metaPath)).toString('utf8')) as ItemMeta;
        } catch {
          // Removed meanwhile, or being rewritten (or, by a daemon killed meanwhile, left cut off).
          if (unreadable && (await host.lstat(dataPath))?.type === 'file') unreadable.push({ remote, bucket, key, metaPath, dataPath });
          continue;
        }
        if (meta.Dirty !== true) continue;
        const data = await host.lstat(dataPath);
        const size = meta.Size ?? 0;
        const modTimeMs = meta.ModTime ? Date.parse(meta.ModTime) : walk.files[key]!.mtimeMs;
        items.push({
          remote,
          bucket,
          key,
          size,
          modTimeMs: Number.isFinite(modTimeMs) ? modTimeMs : walk.files[key]!.mtimeMs,
          complete: data?.type === 'file' && data.size >= size && coversWhole(meta.Rs, size),
          metaPath,
          dataPath,
        });
      }
    }
  }
  return items.sort((a, b) => (a.remote + a.bucket + a.key < b.remote + b.bucket + b.key ? -1 : 1));
}

/** The current size recorded for a key (null when rclone no longer has it cached). */
export async function cachedSize(host: Host, cacheDir: string, remote: string, bucket: string, key: string): Promise<number | null> {
  try {
    const meta = JSON.parse((await host.readFile(join(cacheDir, 'vfsMeta', remote, bucket, key))).toString('utf8')) as ItemMeta;
    return meta.Size ?? null;
  } catch {
    return null;
  }
}
