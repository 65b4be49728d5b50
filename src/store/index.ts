// The store of a bucket: the folder of its mount (or the `local` directory), or its S3 API (the
// client is loaded on first use) for a bucket with no `mount:` and for a mounted one whose backend
// carries data over the API (Backend.dataThroughApi: s3fs by default, when the bucket has
// credentials; the figures are in bench/RESULTS.md, the reasons in docs/backends.md). One place
// decides, so the resource modules never know which; links do not use a store (they need the mount).
import { getBackend } from '../backends/registry.js';
import { StoreError } from '../errors.js';
import type { Host } from '../host/types.js';
import { bucketRuntimeDir } from '../host/paths.js';
import { isMounted, type ResolvedBucket, type ResolvedEnvironment } from '../spec/types.js';
import { ApiStore } from './api.js';
import { MountedStore } from './mounted.js';
import { confirmLease, writeRefused } from './fence.js';
import { StoreChanged, type KnownObject, type Store, type TransferOptions, type WriteOptions } from './types.js';

/** One store per bucket for the lifetime of `host` (stores may cache, e.g. a manifest read once). */
export function storesFor(env: ResolvedEnvironment, host: Host): (bucket: string) => Store {
  const stores = new Map<string, Store>();
  return (key) => {
    let store = stores.get(key);
    if (!store) {
      const bucket = env.buckets[key];
      if (!bucket) throw new Error(`internal error: no bucket ${JSON.stringify(key)} in the spec`);
      if (isMounted(bucket) && !throughApi(bucket)) {
        const backend = getBackend(bucket.mount.backend);
        const flusher = backend.flush
          ? (timeoutMs: number) => backend.flush!(bucket, { host, runtimeDir: bucketRuntimeDir(host.env(), bucket), processEnv: host.env() }, { timeoutMs })
          : undefined;
        store = new MountedStore(host, bucket.mount.path, flusher, { uploadsOnClose: backend.uploadsOnClose === true });
      } else {
        store = new ApiStore(host, bucket);
      }
      store = fencedStore(store, () => writeRefused(key, () => host.now().getTime()), () => confirmLease(key));
      stores.set(key, store);
    }
    return store;
  };
}

/** Whether a bucket's syncs, bundles and files go through its S3 API (always without a mount). */
export function throughApi(bucket: ResolvedBucket): boolean {
  if (!isMounted(bucket)) return true;
  return bucket.credentials !== undefined && getBackend(bucket.mount.backend).dataThroughApi?.(bucket) === true;
}

/**
 * `store`, with every write refused while `refused` gives a reason (the bucket's write fence,
 * store/fence.ts), and a conditional write that found the object changed (StoreChanged) made again
 * without its condition once `confirm` says the lease is still this machine's.
 */
export function fencedStore(store: Store, refused: () => Promise<string | null>, confirm: () => Promise<string | null>): Store {
  const fix = 'run persist apply again: it takes the lease again (waiting for another machine that holds it)';
  const guarded =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const why = await refused();
      if (why) throw new StoreError(why, fix);
      return write(...args);
    };
  const conditional =
    <O extends { unchangedSince?: string | null }, R>(write: (options: O) => Promise<R>) =>
    async (options: O): Promise<R> => {
      try {
        return await write(options);
      } catch (error) {
        if (!(error instanceof StoreChanged)) throw error;
        const why = await confirm();
        if (why) throw new StoreError(`${error.message}, and ${why}`, fix);
        const { unchangedSince: _, ...unconditional } = options;
        return write(unconditional as O);
      }
    };
  return {
    where: (key) => store.where(key),
    stat: (key) => store.stat(key),
    readdir: (key) => store.readdir(key),
    list: (key, isExcluded) => store.list(key, isExcluded),
    read: (key) => store.read(key),
    readHead: (key, bytes) => store.readHead(key, bytes),
    hash: (key) => store.hash(key),
    download: (key, localPath, options) => store.download(key, localPath, options),
    localPath: (key) => store.localPath(key),
    flush: (timeoutMs) => store.flush(timeoutMs),
    write: guarded((key: string, data: string | Buffer, options: WriteOptions = {}) => conditional((o: WriteOptions) => store.write(key, data, o))(options)),
    upload: guarded((localPath: string, key: string, options: TransferOptions) => conditional((o: TransferOptions) => store.upload(localPath, key, o))(options)),
    uploadGrown: guarded((localPath: string, key: string, options: TransferOptions, base: KnownObject) => conditional((o: TransferOptions) => store.uploadGrown(localPath, key, o, base))(options)),
    copy: guarded((from: string, to: string) => store.copy(from, to)),
    rename: guarded((from: string, to: string) => store.rename(from, to)),
    remove: guarded((key: string) => store.remove(key)),
    pruneEmptyFolders: guarded((root: string, removedKeys: string[]) => store.pruneEmptyFolders(root, removedKeys)),
  };
}
