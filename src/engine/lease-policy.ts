// Which buckets apply and watch take the lease of (src/engine/lease.ts). Loaded only by commands
// that are about to write, and the lease module (with the S3 client) only when a bucket needs it.
//
// Today: the buckets reached through their S3 API (no `mount:`). The lease of a `local` bucket
// (an exclusive file) and of a FUSE-mounted bucket with credentials (through the API) is
// implemented in lease.ts (`leaseStoreFor`), but apply does not take it yet: a machine holds its
// lease until shutdown releases it or it expires, and the flows on mounted buckets (a second
// container restoring right after the first) must run `persist shutdown` first.
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';

/** Take (or renew) the lease of every bucket of `env` reached through its S3 API, waiting up to `timeoutMs`. */
export async function takeLeases(host: Host, env: ResolvedEnvironment, timeoutMs: number): Promise<void> {
  const apiBuckets = Object.values(env.buckets).filter((bucket) => !bucket.mount);
  if (apiBuckets.length === 0) return;
  const { acquireLease, s3LeaseStore } = await import('./lease.js');
  for (const bucket of apiBuckets) await acquireLease(host, await s3LeaseStore(bucket), { timeoutMs });
}
