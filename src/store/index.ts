// The store of a bucket: today the folder of its mount (or the `local` directory). One place
// decides, so that a bucket reached through the S3 API needs a line here and nothing in the
// resource modules.
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
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
      store = new MountedStore(host, bucket.mount.path);
      stores.set(key, store);
    }
    return store;
  };
}
