// Whether another machine may be writing into a bucket right now: it holds the bucket's lease
// (src/engine/lease.ts) and the lease has not expired. Read-only (a GET of the lease object, or a
// read of a `local` bucket's lease file). Used by clean (another machine's partial files are left
// alone) and verify (a file another machine's push is replacing is not called damaged at once).
import { canHoldLease } from '../engine/lease-policy.js';
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';

/**
 * A function saying which other machine holds a bucket's live lease (`its lease is held by machine
 * ...`, for messages), or null: nobody, this machine, or a bucket that cannot have a lease. A lease
 * that cannot be read is null, or with `unreadable: 'busy'` (clean: when in doubt, leave files
 * alone) `its lease could not be read (...)`.
 */
export async function otherLeaseHolder(host: Host, env: ResolvedEnvironment, options: { unreadable?: 'free' | 'busy' } = {}): Promise<(bucket: string) => Promise<string | null>> {
  const { errorMessage } = await import('../output/format.js');
  const { peekMachine } = await import('../lineage/machine.js');
  const { describeHolder } = await import('../output/lease-view.js');
  const self = (await peekMachine(host).catch(() => null))?.id ?? null; // none yet: every holder is another machine
  return async (key) => {
    const bucket = env.buckets[key];
    if (!bucket || !canHoldLease(bucket)) return null;
    try {
      const { leaseHolder, leaseStoreFor } = await import('../engine/lease.js');
      const store = await leaseStoreFor(host, bucket);
      const holder = store ? await leaseHolder(host, store) : null;
      return holder && !holder.expired && holder.machine !== self ? `its lease is held by ${describeHolder(holder)}` : null;
    } catch (error) {
      return options.unreadable === 'busy' ? `its lease could not be read (${errorMessage(error)})` : null;
    }
  };
}
