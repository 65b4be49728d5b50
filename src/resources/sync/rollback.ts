// `persist rollback sync.x --to N`: the local folder becomes generation N's content. Built in a
// new folder beside it (every file checked against N's manifest, N's folder modes applied, the
// folders they list made even when empty), then the current local folder
// is moved aside into the backups and the new one renamed into place, the sync's excluded files
// moved back into it (they are not part of any generation). The store is not changed:
// its current generation stays current, and this machine records that it has seen it, so the
// next push makes a new generation whose parent is the current one.
// The new folder is `<from>.persist-rollback-<pid>-<8 hex>`, named in a marker in the state folder
// first (host/state-leftovers.ts): if this process is killed while it builds, the next run that
// takes the lock sees the pid dead and removes the folder.
import { join } from 'node:path';
import { PersistError } from '../../errors.js';
import { stateDir } from '../../host/paths.js';
import { buildingPath, markBuilding } from '../../host/state-leftovers.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedEnvironment, ResolvedSync } from '../../spec/types.js';
import { moveAsideExcept } from '../../lineage/aside.js';
import { ensureMachine } from '../../lineage/machine.js';
import { storeIdentity, treeDigestInput } from '../../lineage/generation.js';
import { treeDigest, writeLocalRecord } from '../../lineage/record.js';
import { addressOfSync, manifestStamp, readGeneration } from './generations.js';
import { createPathMatcher } from './glob.js';
import type { SyncManifest } from './manifest.js';
import { syncExcluder, walkTree } from './tree.js';

export interface RollbackResult {
  generation: number;
  current: number;
  files: number;
  bytes: number;
  /** Where the local folder that was there went (null: there was none). */
  keptAside: string | null;
}

export async function rollbackSync(host: Host, env: ResolvedEnvironment, sync: ResolvedSync, store: Store, manifest: SyncManifest | null, generation: number, progress: (line: string) => void): Promise<RollbackResult> {
  const address = addressOfSync(sync);
  if (!manifest) throw new PersistError(`${address}: ${store.where(sync.relTo)} has no manifest, so no generations to roll back to`);
  const current = manifestStamp(manifest);
  const { files, keyOf, folderModes } = await readGeneration(sync, store, manifest, generation);
  const building = buildingPath(host, sync.from, 'rollback');
  const unmark = await markBuilding(host, stateDir(host.env()), [building]);
  let bytes = 0;
  try {
    const rootMode = (await host.lstat(sync.from))?.mode ?? 0o755;
    await host.mkdir(building, { mode: 0o700 });
    const paths = Object.keys(files).sort();
    for (const [index, path] of paths.entries()) {
      const entry = files[path]!;
      const key = await keyOf(entry.link ?? path); // a hard link's bytes are stored under its first name (hardlinks.ts)
      progress(`restoring ${path} (${index + 1}/${paths.length})`);
      const result = await store.download(key, join(building, path), { mode: entry.mode, mtimeMs: entry.mtimeMs });
      if (result.sha256 !== entry.sha256 || result.size !== entry.size) {
        throw new PersistError(`${address}: ${store.where(key)} does not hold generation ${generation}'s ${path} (sha256 or size differ); nothing was changed locally`);
      }
      bytes += result.size;
    }
    const modes = await folderModes();
    for (const path of Object.keys(modes).sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? -1 : 1))) {
      const target = join(building, path);
      const info = await host.lstat(target);
      if (info && info.type !== 'dir') continue;
      if (!info) await host.mkdir(target);
      await host.chmod(target, modes[path]!);
    }
    await host.chmod(building, rootMode);
    await host.fsync(building);
    // The sync's excluded files are not the generation's: they stay in the folder (moveAsideExcept).
    let keptAside: string | null = null;
    if (await host.lstat(sync.from)) keptAside = await moveAsideExcept(host, env.workspace, address, sync.from, createPathMatcher(sync.exclude), building);
    else await host.rename(building, sync.from);
    await ensureMachine(host); // the next push names this machine
    const local = await walkTree(host, sync.from, syncExcluder(sync.exclude));
    await writeLocalRecord(host, {
      environment: env.environment,
      address,
      local: sync.from,
      store: storeIdentity(env.buckets[sync.bucket]!, sync.relTo),
      generation: current.generation,
      stamp: current,
      // The folder now differs from the current generation: the next plan pushes it.
      tree: treeDigest(treeDigestInput(local.files)),
      at: host.now().toISOString(),
      event: 'rollback',
      rollback: { files: paths.length, dropped: Object.keys(manifest.files).filter((path) => !(path in files)).length },
    });
    return { generation, current: current.generation, files: paths.length, bytes, keptAside };
  } finally {
    await host.remove(building);
    await unmark();
  }
}
