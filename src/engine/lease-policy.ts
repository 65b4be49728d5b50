// Which buckets a command takes the lease of (src/engine/lease.ts, docs/architecture.md "The
// lease"). Pure and cheap: plan uses it for its note without touching any lease; the lease module
// (and the S3 client) is loaded only by a command that is about to write.
//
// A bucket can hold a lease when persist can compare-and-swap in it: through its S3 API (a bucket
// without a mount, or a FUSE mount with credentials) or as an exclusive file (`local`). apply takes
// the lease of every bucket its actions read or write data of (a restore, a push, an adopt, a
// link), right before the first of them: so a new container's first apply waits for the old one's
// last push before it restores. A mount's own actions (mount, remount, replace) move no data of the
// bucket: alone they take no lease; in a run that then touches the data of a FUSE-mounted bucket,
// its mount comes after the lease (a `local` bucket's folder, where its lease file lives, is made
// by its mount, so there the lease comes after it).
import { LockError } from '../errors.js';
import type { Host } from '../host/types.js';
import type { ResolvedBucket, ResolvedEnvironment } from '../spec/types.js';
import type { LeaseKeeper } from './lease.js';
import type { Observation } from './observe.js';
import type { PlannedAction } from './types.js';

export const DEFAULT_LEASE_TTL_MS = 60_000;

/** The bucket's lease time to live (`lease: { ttl }`, default 60 s). */
export function leaseTtlMs(bucket: ResolvedBucket): number {
  return bucket.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
}

/** Whether persist can hold a lease on the bucket (a FUSE mount without credentials cannot). */
export function canHoldLease(bucket: ResolvedBucket): boolean {
  return bucket.mount?.backend === 'local' || bucket.credentials !== undefined;
}

/**
 * The buckets whose data the actions read or write: each action's resource's bucket, for every
 * kind but the one that makes a bucket ready (the mount). Conflicts are refused anyway, and so is
 * everything in a bucket whose mount is a conflict: they take no lease.
 */
export function bucketsActedOn(actions: PlannedAction[], observation: Observation): string[] {
  const byAddress = new Map(observation.resources.map((r) => [r.address, r]));
  const blocked = new Set<string>();
  for (const action of actions) {
    const observed = byAddress.get(action.address);
    if (action.conflict && observed?.module.readiness) blocked.add(observed.module.readiness.bucketOf(observed.resource));
  }
  const buckets = new Set<string>();
  for (const action of actions) {
    const observed = byAddress.get(action.address);
    if (!observed || action.conflict || observed.module.readiness) continue;
    const bucket = observed.module.needsBucket(observed.resource);
    if (bucket !== null && !blocked.has(bucket)) buckets.add(bucket);
  }
  return [...buckets];
}

/** Of these buckets, the ones that cannot hold a lease (for the plan's note). */
export function bucketsWithoutLease(env: ResolvedEnvironment, keys: string[]): string[] {
  return keys.filter((key) => env.buckets[key] && !canHoldLease(env.buckets[key]));
}

export interface LeaseGate {
  /** Before an action: take (once per run) the lease of the bucket whose data it touches. */
  before(action: PlannedAction): Promise<void>;
  /** Stop renewing; the leases stay held until shutdown releases them or they expire. */
  stop(): Promise<void>;
}

/**
 * apply's lease: taken right before the first action that reads or writes a bucket's data (before
 * the restores; for a FUSE mount whose data the run touches, before the mount), waiting up to
 * `timeoutMs` for another machine's; renewed until the run ends. A bucket whose lease could not be
 * had fails each of its actions with the reason (and what depends on its mount is skipped).
 */
export function leaseGate(host: Host, env: ResolvedEnvironment, actions: PlannedAction[], observation: Observation, timeoutMs: number, events: ConstructorParameters<typeof LeaseKeeper>[1]): LeaseGate {
  let keeper: LeaseKeeper | null = null;
  const taking = new Map<string, Promise<void>>();
  const acted = new Set(bucketsActedOn(actions, observation));
  const byAddress = new Map(observation.resources.map((r) => [r.address, r]));
  /** The bucket whose lease must be held before this action, if any; `early` before its mount. */
  const bucketBefore = (action: PlannedAction): { key: string; early: boolean } | undefined => {
    const data = bucketsActedOn([action], observation)[0];
    if (data !== undefined) return { key: data, early: false };
    // A FUSE mount whose data this run then touches: its lease (through the API) comes before the
    // mount, so that the new mount caches nothing of the store before the old container's last push.
    const observed = byAddress.get(action.address);
    const made = observed?.module.readiness?.bucketOf(observed.resource);
    return made !== undefined && acted.has(made) && env.buckets[made]?.mount?.backend !== 'local' ? { key: made, early: true } : undefined;
  };
  return {
    async before(action) {
      const { key, early } = bucketBefore(action) ?? {};
      const bucket = key === undefined ? undefined : env.buckets[key];
      if (!bucket || !canHoldLease(bucket)) return;
      let taken = taking.get(bucket.key);
      if (!taken) {
        taken = (async () => {
          if (!keeper) {
            const { LeaseKeeper } = await import('./lease.js');
            keeper = new LeaseKeeper(host, events);
          }
          await keeper.take([bucket], timeoutMs);
          keeper.start();
        })();
        taking.set(bucket.key, taken);
      }
      try {
        await taken;
      } catch (error) {
        // Before a mount, only another machine's lease stops it: a store that cannot be reached
        // (bad keys, no such bucket) lets the mount fail with the backend's own reason, and the
        // bucket's first data action tries the lease again.
        const { LeaseHeld } = await import('./lease.js');
        if (!early || error instanceof LeaseHeld) throw error;
        taking.delete(bucket.key);
      }
    },
    async stop() {
      await keeper?.stop();
    },
  };
}

/**
 * Before a run carries out its plan: of the buckets whose data the actions touch, those whose
 * lease another machine holds right now (not expired) are waited for, up to `timeoutMs`, and
 * taken. The holder is typically the old container of a redeploy, whose shutdown pushes one last
 * time before it releases the lease: the plan made before that push is out of date, so the caller
 * plans again when this returns `waited`. A lease still held at the deadline is left to the
 * actions' own gate (`remainingMs`: what is left of the wait), which fails them naming the holder.
 */
export async function waitForHeldLeases(
  host: Host,
  env: ResolvedEnvironment,
  actions: PlannedAction[],
  observation: Observation,
  timeoutMs: number,
  events: ConstructorParameters<typeof LeaseKeeper>[1],
): Promise<{ waited: boolean; remainingMs: number }> {
  const deadline = host.now().getTime() + timeoutMs;
  const buckets = bucketsActedOn(actions, observation).flatMap((key) => (env.buckets[key] && canHoldLease(env.buckets[key]) ? [env.buckets[key]] : []));
  if (buckets.length === 0) return { waited: false, remainingMs: timeoutMs };
  const { LeaseKeeper, leaseHolder, leaseStoreFor, machineId } = await import('./lease.js');
  const self = await machineId(host);
  const heldElsewhere: ResolvedBucket[] = [];
  for (const bucket of buckets) {
    const store = await leaseStoreFor(host, bucket).catch(() => null);
    // Unreadable here (no bucket folder yet, the store unreachable): the actions' gate says why.
    const holder = store ? await leaseHolder(host, store).catch(() => null) : null;
    if (holder && !holder.expired && holder.machine !== self) heldElsewhere.push(bucket);
  }
  if (heldElsewhere.length === 0) return { waited: false, remainingMs: timeoutMs };
  const keeper = new LeaseKeeper(host, events);
  try {
    await keeper.take(heldElsewhere, timeoutMs);
  } catch (error) {
    // Still held at the deadline, or unreachable meanwhile: the actions' gate fails them saying so.
    if (!(error instanceof LockError)) throw error;
  } finally {
    await keeper.stop();
  }
  return { waited: true, remainingMs: Math.max(0, deadline - host.now().getTime()) };
}

/** Every bucket of `env` that can hold a lease (watch keeps them all; status shows them). */
export function leasableBuckets(env: ResolvedEnvironment): ResolvedBucket[] {
  return Object.values(env.buckets).filter(canHoldLease);
}
