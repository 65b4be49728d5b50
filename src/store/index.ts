// The store of a bucket: the folder of its mount (or the `local` directory), or its S3 API (the
// client is loaded on first use) for a bucket with no `mount:` and for a mounted one whose backend
// carries data over the API (Backend.dataThroughApi: s3fs by default, when the bucket has
// credentials; the figures are in bench/RESULTS.md, the reasons in docs/backends.md). One place
// decides, so the resource modules never know which; links do not use a store (they need the mount).
import { getBackend } from '../backends/registry.js';
import type { Host } from '../host/types.js';
import { bucketRuntimeDir } from '../host/paths.js';
import { isMounted, type ResolvedBucket, type ResolvedEnvironment } from '../spec/types.js';
import { ApiStore } from './api.js';
import { MountedStore } from './mounted.js';
import type { Store } from './types.js';

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
