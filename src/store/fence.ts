// The write fence of the buckets whose lease this process holds (engine/lease.ts sets it when it
// takes or renews a lease): until when, by this machine's clock, a write into the bucket may start
// without looking at the lease (the lease's own `expiresAt`). Past it, another machine may have
// taken the lease over (it judges by the store's clock), so a write first renews the lease (a
// compare-and-swap on the version this process holds): it goes on only if the lease is still this
// machine's, and is refused otherwise (fencedStore, store/index.ts). A process frozen in the
// middle of a push (a paused container) thus stops when it wakes instead of overwriting what the
// new holder saved; one whose timer was only late goes on. A bucket with no fence (no lease taken
// by this process) is not fenced. Kept apart from the lease code so that commands that only read
// load none of it.
import { leaseLapsedMessage } from '../output/lease-view.js';

interface Fence {
  untilMs: number;
  /** Renew the lease now; resolves to why it is not this machine's any more, or null. */
  renew?: () => Promise<string | null>;
  lost?: string;
}

const fences = new Map<string, Fence>();
const renewing = new Map<string, Promise<string | null>>();

/** Writes into `bucket` may start until `untilMs` (this machine's clock); after, once `renew` confirms the lease. */
export function setWriteFence(bucket: string, untilMs: number, renew: () => Promise<string | null>): void {
  fences.set(bucket, { untilMs, renew });
}

/** No write into `bucket` any more: its lease was lost (`why`). */
export function closeWriteFence(bucket: string, why: string): void {
  fences.set(bucket, { untilMs: 0, lost: why });
}

/** Why a write into `bucket` must not start now, or null (renewing the lease first when it lapsed). */
export async function writeRefused(bucket: string, nowMs: () => number): Promise<string | null> {
  const fence = fences.get(bucket);
  if (!fence) return null;
  if (fence.lost) return fence.lost;
  return nowMs() < fence.untilMs ? null : confirmed(bucket, fence);
}

/**
 * A conditional write found the object changed since this machine last knew it: another machine's
 * write, or one of this machine's whose answer was lost. The lease is renewed to tell: still this
 * machine's (null), the write may go on; else why not. No fence (no lease taken here): null.
 */
export async function confirmLease(bucket: string): Promise<string | null> {
  const fence = fences.get(bucket);
  if (!fence) return null;
  return fence.lost ?? confirmed(bucket, fence);
}

async function confirmed(bucket: string, fence: Fence): Promise<string | null> {
  if (!fence.renew) return leaseLapsedMessage(bucket, new Date(fence.untilMs));
  // One renewal for all the writes that asked at once.
  let renewal = renewing.get(bucket);
  if (!renewal) {
    renewal = fence.renew().finally(() => renewing.delete(bucket));
    renewing.set(bucket, renewal);
  }
  const lost = await renewal.catch((error: unknown) => `could not be renewed: ${(error as Error).message}`);
  return lost ? `${leaseLapsedMessage(bucket, new Date(fence.untilMs))}: ${lost}` : null;
}
