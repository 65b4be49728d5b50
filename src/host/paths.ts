// Where persist keeps its own local state: the apply lock, backends' runtime folders (passwd
// files, logs, caches). Always local disk, never the bucket.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { MountedBucket } from '../spec/types.js';

/** `$PERSIST_STATE_DIR`, else `$XDG_STATE_HOME/persist`, else `$HOME/.local/state/persist`. */
export function stateDir(env: Record<string, string | undefined>): string {
  if (env.PERSIST_STATE_DIR) return env.PERSIST_STATE_DIR;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'persist');
  return join(env.HOME ?? '/root', '.local', 'state', 'persist');
}

/** The spec parse cache (src/spec/cache.ts). */
export function specCacheDir(env: Record<string, string | undefined>): string {
  return join(stateDir(env), 'spec-cache');
}

/** Private runtime folder of one bucket's mount (mode 0700): `<state>/mounts/<bucket>-<hash of mount path>`. */
export function bucketRuntimeDir(env: Record<string, string | undefined>, bucket: MountedBucket): string {
  const id = createHash('sha256').update(bucket.mount.path).digest('hex').slice(0, 10);
  return join(stateDir(env), 'mounts', `${bucket.name}-${id}`);
}

/** Folder beside the workspace where adopt keeps the original of each adopted directory. */
export function backupDir(workspace: string): string {
  return join(workspace, '.persist-backups');
}
