// The kind-blind side of history and rollback: which module's generations a resource has.
import type { ObservedResource } from '../engine/observe.js';
import type { ObserveContext } from '../engine/types.js';
import type { HistoryRow } from '../output/history-view.js';
import type { ResolvedBundle, ResolvedSync } from '../spec/types.js';
import { syncHistory } from '../resources/sync/generations.js';
import type { SyncDetail } from '../resources/sync/index.js';
import { bundleHistory } from '../resources/bundle/generations.js';

export async function lineageHistory(resource: ObservedResource, ctx: ObserveContext): Promise<HistoryRow> {
  if (resource.module.kind === 'sync') {
    const sync = resource.resource as ResolvedSync;
    const row: HistoryRow = { address: resource.address, where: sync.to, counts: 'file', generations: [] };
    if (ctx.mountReady[sync.bucket] !== true) return { ...row, problem: `mount.${sync.bucket} is not mounted: run persist apply first` };
    if (resource.unobserved) return { ...row, problem: `${resource.unobserved.message}. ${resource.unobserved.fix}` };
    row.generations = await syncHistory(sync, ctx.store(sync.bucket), (resource.seen.detail as SyncDetail).manifest);
    return row;
  }
  const bundle = resource.resource as ResolvedBundle;
  const row: HistoryRow = { address: resource.address, where: bundle.file, counts: 'ref', generations: [] };
  if (ctx.mountReady[bundle.bucket] !== true) return { ...row, problem: `mount.${bundle.bucket} is not mounted: run persist apply first` };
  if (resource.unobserved) return { ...row, problem: `${resource.unobserved.message}. ${resource.unobserved.fix}` };
  row.generations = await bundleHistory(bundle, ctx.store(bundle.bucket));
  return row;
}
