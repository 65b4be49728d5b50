// The bucket leases in `persist status`: one row per bucket reached through its S3 API, naming the
// machine that holds its lease (read-only: a HEAD and a GET of the lease object).
import type { Host } from '../host/types.js';
import { errorMessage } from '../output/format.js';
import type { StatusRow } from '../output/status-view.js';
import type { ResolvedEnvironment } from '../spec/types.js';

export async function leaseRows(host: Host, env: ResolvedEnvironment): Promise<StatusRow[]> {
  const apiBuckets = Object.values(env.buckets).filter((bucket) => !bucket.mount);
  if (apiBuckets.length === 0) return [];
  const { leaseHolder, machineId, s3LeaseStore } = await import('../engine/lease.js');
  const self = await machineId(host).catch(() => null); // a read-only host cannot create it
  return Promise.all(
    apiBuckets.map(async (bucket): Promise<StatusRow> => {
      const address = `lease.${bucket.key}`;
      try {
        const store = await s3LeaseStore(bucket);
        const holder = await leaseHolder(host, store);
        if (!holder) return { address, ok: true, state: 'ok', facts: { lease: store.where, holder: null, held: false } };
        return {
          address,
          ok: true,
          state: 'ok',
          facts: { lease: store.where, holder: holder.machine, host: holder.host, pid: holder.pid, expires: holder.expiresAt, expired: holder.expired, thisMachine: holder.machine === self },
        };
      } catch (error) {
        return { address, ok: false, state: `cannot read the lease: ${errorMessage(error)}`, facts: {} };
      }
    }),
  );
}
