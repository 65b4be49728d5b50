// Pieces the FUSE drivers share: mount identity, the child's environment, unmounting.
import { ActionError } from '../errors.js';
import type { Host, MountEntry } from '../host/types.js';
import type { MountedBucket, ResolvedBucket } from '../spec/types.js';
import type { OptionProblem } from './options.js';
import type { Backend } from './types.js';

/** The child's complete environment: the process's, minus `remove`, plus `add`. */
export function childEnv(
  processEnv: Record<string, string | undefined>,
  add: Record<string, string>,
  remove: string[] = [],
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(processEnv)) {
    if (value !== undefined && !remove.includes(name)) env[name] = value;
  }
  return { ...env, ...add };
}

/** The endpoint a backend talks to: the spec's, else the provider's usual one. */
export function endpointOf(bucket: ResolvedBucket): string {
  if (bucket.endpoint) return bucket.endpoint;
  if (bucket.provider === 'aws') return `https://s3.${bucket.region ?? 'us-east-1'}.amazonaws.com`;
  throw new ActionError(`bucket ${bucket.key} (${bucket.name}) has no endpoint; set buckets.${bucket.key}.endpoint`);
}

export function regionOf(bucket: ResolvedBucket): string {
  return bucket.region ?? (bucket.provider === 'aws' ? 'us-east-1' : 'auto');
}

/** Access key and secret, revealed: only for a 0600 file or a child's environment. */
export function revealCredentials(bucket: ResolvedBucket): { accessKeyId: string; secretAccessKey: string } {
  if (!bucket.credentials) {
    throw new ActionError(
      `bucket ${bucket.key} (${bucket.name}) has no credentials; set buckets.${bucket.key}.credentials.accessKeyId and secretAccessKey`,
    );
  }
  return { accessKeyId: bucket.credentials.accessKeyId.reveal(), secretAccessKey: bucket.credentials.secretAccessKey.reveal() };
}

/**
 * Unmount a FUSE mount point: `fusermount -u`, then lazily (`-u -z`) when it is busy, so that the
 * daemon can exit once the last user lets go. Dead mounts (daemon killed) unmount the same way.
 */
export async function fuseUnmount(host: Host, mountPoint: string): Promise<void> {
  const clean = await host.run('fusermount', ['-u', mountPoint], { timeoutMs: 30_000 });
  if (clean.exitCode === 0) return;
  const lazy = await host.run('fusermount', ['-u', '-z', mountPoint], { timeoutMs: 30_000 });
  if (lazy.exitCode === 0) return;
  // As root, umount works where fusermount refuses (e.g. a mount made by another user).
  const umount = await host.run('umount', ['-l', mountPoint], { timeoutMs: 30_000 });
  if (umount.exitCode === 0) return;
  throw new ActionError(
    `could not unmount ${mountPoint}: ${(lazy.stderr || clean.stderr || umount.stderr).trim() || `fusermount exited with ${lazy.exitCode}`}`,
  );
}

/**
 * How persist recognises its own FUSE mounts: the type (`fuse.s3fs`...) and, as the source, the
 * bucket's name (set with fsname or --devname).
 */
export function identifiedBy(fsType: string): Pick<Backend, 'matches' | 'owns'> {
  return {
    matches: (entry: MountEntry, bucket: MountedBucket) => entry.fsType === fsType && entry.source === bucket.name,
    owns: (entry: MountEntry) => entry.fsType === fsType,
  };
}

/**
 * Refuse to build a mount command from options the spec's check should already have rejected (the
 * same rules: src/backends/options.ts), in case a bucket reaches a driver some other way.
 */
export function assertValidOptions(backend: string, problems: OptionProblem[]): void {
  if (problems.length) {
    throw new ActionError(`invalid ${backend} options: ${problems.map((p) => `${p.key}${p.index === undefined ? '' : `[${p.index}]`}: ${p.message}`).join('; ')}`);
  }
}
