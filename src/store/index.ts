// The store of a bucket: the folder of its mount (or the `local` directory), or, for a bucket
// with no `mount:`, its S3 API (the client is loaded on first use). One place decides, so the
// resource modules never know which.
import { getBackend } from '../backends/registry.js';
import type { Host } from '../host/types.js';
import { bucketRuntimeDir } from '../host/paths.js';
import { isMounted, type ResolvedEnvironment } from '../spec/types.js';
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
      if (isMounted(bucket)) {
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
