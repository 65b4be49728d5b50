// `plan --diff`: where the two sides of a file a sync push would send are read from (the
// mirror through the bucket's store, the local copy through the read-only host).
import { join } from 'node:path';
import type { ObserveContext } from '../engine/types.js';
import type { Host } from '../host/types.js';
import type { DiffSource } from '../output/file-diff.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { mirrorKey } from '../resources/sync/names.js';

/** The two sides of a file of a sync push, for `plan --diff`: the mirror's copy and the local one. */
export function syncDiffSource(host: Host, env: ResolvedEnvironment, ctx: ObserveContext): DiffSource {
  return {
    sides(action, path) {
      const sync = Object.values(env.syncs).find((s) => action.address === `sync.${s.name}`);
      if (!sync) return null;
      const store = ctx.store(sync.bucket);
      const key = mirrorKey(sync, path);
      const local = join(sync.from, path);
      return {
        mirrorName: store.where(key),
        localName: local,
        mirror: { size: async () => (await store.stat(key))?.size ?? null, read: () => store.read(key) },
        local: { size: async () => (await host.stat(local))?.size ?? null, read: () => host.readFile(local) },
      };
    },
  };
}
