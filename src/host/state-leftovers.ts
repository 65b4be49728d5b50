// What a killed run leaves in the state folder: the temporaries of its atomic writes
// (`.<name>.persist-tmp-<pid>-<8 hex>`, real.ts writeFileAtomic) beside the state files it was
// replacing (sync state, lineage records, manifest shards, the spec cache). Removed by the next run
// that holds the apply lock, where their pid is not a live process: a lock-free command (plan
// writes the spec cache) may be writing one right now, and its pid is alive. Folders with their own
// rules are not walked: `mounts` (backends' caches), `tmp` and `stage` (bundle/scratch.ts,
// sync/push-run.ts).
import { join } from 'node:path';
import type { Host } from './types.js';

const ATOMIC_TEMP = /^\..+\.persist-tmp-(\d+)-[0-9a-f]{8}$/s;
const OWN_RULES = new Set(['mounts', 'tmp', 'stage']);
/** The state folder's files lie at most this deep (lineage/env/<environment>/<address>.json). */
const MAX_DEPTH = 3;

/** Remove dead runs' temporaries under `stateFolder`; returns the paths removed. Never throws. */
export async function removeDeadTemporaries(host: Host, stateFolder: string): Promise<string[]> {
  const removed: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const names = await host.readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(dir, name);
      const pid = Number(ATOMIC_TEMP.exec(name)?.[1] ?? NaN);
      if (Number.isSafeInteger(pid) && pid > 0) {
        if (pid === host.pid() || host.processAlive(pid)) continue;
        if ((await host.lstat(path))?.type !== 'file') continue;
        await host.remove(path).then(
          () => removed.push(path),
          () => undefined, // gone meanwhile, or not ours to remove
        );
      } else if (depth < MAX_DEPTH && !(depth === 0 && OWN_RULES.has(name)) && (await host.lstat(path))?.type === 'dir') {
        await visit(path, depth + 1);
      }
    }
  };
  await visit(stateFolder, 0);
  return removed;
}
