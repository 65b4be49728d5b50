// The bucket leases in `persist status`: one row per bucket, naming the machine that holds its
// lease (read-only: a HEAD and a GET of the lease object, or a read of a `local` bucket's file),
// or saying that the bucket cannot have one (a FUSE mount without credentials).
import { canHoldLease, leaseTtlMs } from '../engine/lease-policy.js';
import { pathTrouble } from '../engine/observe.js';
import type { Host } from '../host/types.js';
import { errorMessage } from '../output/format.js';
import { leaseTtlFact, noLeaseFact } from '../output/lease-view.js';
import type { StatusRow } from '../output/status-view.js';
import type { ResolvedEnvironment } from '../spec/types.js';

export async function leaseRows(host: Host, env: ResolvedEnvironment): Promise<StatusRow[]> {
  const buckets = Object.values(env.buckets);
  if (buckets.length === 0) return [];
  const { leaseHolder, leaseStoreFor } = await import('../engine/lease.js');
  const { peekMachine } = await import('../lineage/machine.js');
  const self = (await peekMachine(host).catch(() => null))?.id ?? null; // a read-only host cannot make one
  return Promise.all(
    buckets.map(async (bucket): Promise<StatusRow> => {
      const address = `lease.${bucket.key}`;
      if (!canHoldLease(bucket)) return { address, ok: true, state: 'ok', facts: { lease: noLeaseFact() } };
      try {
        const store = (await leaseStoreFor(host, bucket))!;
        const holder = await leaseHolder(host, store);
        const ttl = leaseTtlFact(leaseTtlMs(bucket));
        if (!holder) return { address, ok: true, state: 'ok', facts: { lease: store.where, holder: null, held: false, ttl } };
        return {
          address,
          ok: true,
          state: 'ok',
          facts: { lease: store.where, holder: holder.machine, host: holder.host, pid: holder.pid, expires: holder.expiresAt, expired: holder.expired, thisMachine: holder.machine === self, ttl },
        };
      } catch (error) {
        return { address, ok: false, state: `cannot read the lease: ${errorMessage(pathTrouble(error) ?? error)}`, facts: {} };
      }
    }),
  );
}
