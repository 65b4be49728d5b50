// What persist says about the bucket lease (docs/architecture.md, "The lease"): who holds it, why
// a machine waits or stops, and what a bucket that cannot have one means.
import { formatDuration } from './format.js';

export interface LeaseHolderText {
  machine: string;
  host: string;
  pid: number;
  renewedAt: string;
  expiresAt: string;
}

export function describeHolder(body: LeaseHolderText | null): string {
  if (!body) return 'an unreadable lease';
  return `machine ${body.machine} (host ${body.host}, pid ${body.pid}, lease renewed ${body.renewedAt}, expires ${body.expiresAt})`;
}

export function leaseHeldMessage(where: string, holder: LeaseHolderText | null, self: string): string {
  return `the bucket lease ${where} is held by ${describeHolder(holder)}; this machine is ${self}. Wait for that container to shut down (\`persist shutdown\` releases the lease) or for the lease to expire (apply waits up to --lock-timeout)`;
}

export function leaseTakenMessage(where: string, holder: LeaseHolderText | null): string {
  return `the bucket lease ${where} was taken by ${describeHolder(holder)}; this machine must not save into that bucket any more`;
}

/** A write refused because this process could not renew the bucket's lease in time. */
export function leaseLapsedMessage(bucket: string, until: Date): string {
  return `the lease of bucket ${bucket} was not renewed in time (it expired at ${until.toISOString()} by this machine's clock), so nothing more is written into that bucket`;
}

export function bucketFolderMissing(folder: string): string {
  return `the bucket folder ${folder} is not there yet (its mount action makes it)`;
}

export function leaseFailedMessage(bucket: string, reason: string): string {
  return `could not take the lease of bucket ${bucket}: ${reason}`;
}

/** Said once when a boot waits for the old container's lease (docker logs show why it is slow). */
export function leaseWaitMessage(where: string, holder: LeaseHolderText | null, timeoutMs: number): string {
  return `waiting up to ${formatDuration(timeoutMs)} (--lock-timeout) for the bucket lease ${where}, held by ${describeHolder(holder)}\n`;
}

/** apply, after waiting for another machine's lease: what it found in the store changed its plan. */
export const LEASE_REPLANNED = 'The store changed while this apply waited for the lease (the other container saved last); the plan is now:';

/** Said when a lease is taken over after its time to live: its machine stopped without shutdown. */
export function leaseTakenOverMessage(where: string, from: LeaseHolderText): string {
  return `took over the bucket lease ${where} from ${describeHolder(from)}: it expired without being released (that container stopped without \`persist shutdown\`)\n`;
}

/** Said by apply when the keeper loses a lease mid-run: the run stops at its next safe point. */
export function leaseLostStop(reason: string): string {
  return `\n${reason}: stopping after the current action.\n`;
}

/** watch: the actions left alone because another machine holds their bucket's lease. */
export function leaseWaitLine(bucket: string, reason: string, addresses: string[]): string {
  return `not applied, bucket ${bucket} is not ours: ${addresses.join(', ')} (${reason})`;
}

const NO_LEASE_REASON = 'a FUSE mount without credentials cannot take a lease (a compare-and-swap needs the S3 API)';

/** The plan's note for a bucket that has no lease. */
export function noLeaseNote(bucket: string): string {
  return `bucket ${bucket} has no lease: ${NO_LEASE_REASON}, so nothing keeps a second container from saving into it at the same time; add credentials: to the bucket to have one`;
}

/** `lease=...` in status for a bucket that has none. */
export function noLeaseFact(): string {
  return 'none: a FUSE mount without credentials cannot take one, so a second container is not kept out';
}

/** The time to live as the spec writes it (`60s`, `1500ms`). */
export function leaseTtlFact(ttlMs: number): string {
  return ttlMs % 1000 === 0 ? `${ttlMs / 1000}s` : `${ttlMs}ms`;
}

export function leaseReleased(where: string): string {
  return `released the lease ${where}`;
}

/** Shutdown saved everything but could not delete its lease: the next container waits for it to expire. */
export function leaseNotReleased(where: string, reason: string): string {
  return `not released: ${where}: ${reason}; everything is saved, and the lease expires after its time to live (the next container waits for that)`;
}

export function leaseKept(where: string, ttlMs: number): string {
  return `kept the lease ${where}: not everything is saved, so the next container waits for it (it expires ${formatDuration(ttlMs)} after its last renewal)`;
}
