// `persist rollback bundle.x --to N`: the repo (refs, work tree, stash, uncommitted work) becomes
// generation N's content. The bundle file holding N is found by content (generations.ts) and
// checked against N's sha256; the repo as it is now is kept aside in the backups (restore.ts,
// keepRepoAside), then restored from that file. The store is not changed: its current generation
// stays current, and this machine records that it has seen it, so the next update makes a new
// generation whose parent is the current one (dropping what only the current one holds: it stays
// as `<file>.1`).
import { PersistError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../spec/types.js';
import { readBundleHeader } from './header.js';
import { findGeneration, recordBundleSeen } from './generations.js';
import { headerRefMap, linksInRepo, otherResourcePaths, restoreRepo, type RepoObserved } from './index.js';

export interface BundleRollbackResult {
  generation: number;
  /** The store's current generation (null: a bundle written before lineage). */
  current: number | null;
  refs: number;
  /** `main (abc123def456)` or `detached abc123def456`. */
  head: string;
  /** Where the repo that was there went (null: it had no commits). */
  keptAside: string | null;
  notes: string[];
}

export async function rollbackBundle(
  host: Host,
  env: ResolvedEnvironment,
  bundle: ResolvedBundle,
  store: Store,
  existing: RepoObserved,
  generation: number,
  progress: (line: string) => void,
): Promise<BundleRollbackResult> {
  const address = `bundle.${bundle.name}`;
  const { found, current } = await findGeneration(store, bundle, generation);
  if (!found?.record) throw new PersistError(`${address}: generation ${generation} is not kept beside ${store.where(bundle.relFile)} (persist history lists the ones that are)`);
  const where = store.where(found.key);
  if (found.record.sha256 && (await store.hash(found.key)) !== found.record.sha256) {
    throw new PersistError(`${address}: ${where} does not hold generation ${generation} (its sha256 differs from the record); nothing was changed locally`);
  }
  const header = await readBundleHeader(store, found.key, where);
  if (header.prerequisites.length > 0) throw new PersistError(`${address}: ${where} is not a full bundle (it needs ${header.prerequisites.length} prerequisite commit(s)); nothing was changed locally`);
  const restored = await restoreRepo(host, bundle, store, found.key, header.objectFormat, { workspace: env.workspace, spare: otherResourcePaths(bundle, env), links: linksInRepo(bundle.repo, env.links), existing }, progress);
  await recordBundleSeen(host, env, bundle, current, 'rollback', headerRefMap(header.refs));
  return { generation, current: current?.generation ?? null, refs: restored.refs, head: restored.at, keptAside: restored.keptAside, notes: restored.notes };
}
