// The kind-blind side of history and rollback: which module's generations a resource has.
import type { ObservedResource } from '../engine/observe.js';
import type { ObserveContext } from '../engine/types.js';
import type { HistoryRow } from '../output/history-view.js';
import type { ResolvedBundle, ResolvedSync } from '../spec/types.js';
import { damagedSyncRecords, syncHistory } from '../resources/sync/generations.js';
import type { SyncDetail } from '../resources/sync/index.js';
import { bundleHistory, damagedBundleRecords } from '../resources/bundle/generations.js';

export async function lineageHistory(resource: ObservedResource, ctx: ObserveContext): Promise<HistoryRow> {
  if (resource.module.kind === 'sync') {
    const sync = resource.resource as ResolvedSync;
    const row: HistoryRow = { address: resource.address, where: sync.to, counts: 'file', generations: [] };
    if (ctx.mountReady[sync.bucket] !== true) return { ...row, problem: `mount.${sync.bucket} is not mounted: run persist apply first` };
    if (resource.unobserved) return { ...row, problem: `${resource.unobserved.message}. ${resource.unobserved.fix}` };
    const manifest = (resource.seen.detail as SyncDetail).manifest;
    row.generations = await syncHistory(sync, ctx.store(sync.bucket), manifest);
    const damaged = await damagedSyncRecords(sync, ctx.store(sync.bucket), manifest);
    if (damaged.length > 0) row.damaged = damaged;
    return row;
  }
  const bundle = resource.resource as ResolvedBundle;
  const row: HistoryRow = { address: resource.address, where: bundle.file, counts: 'ref', generations: [] };
  if (ctx.mountReady[bundle.bucket] !== true) return { ...row, problem: `mount.${bundle.bucket} is not mounted: run persist apply first` };
  if (resource.unobserved) return { ...row, problem: `${resource.unobserved.message}. ${resource.unobserved.fix}` };
  row.generations = await bundleHistory(bundle, ctx.store(bundle.bucket));
  const damaged = await damagedBundleRecords(ctx.store(bundle.bucket), bundle);
  if (damaged.length > 0) row.damaged = damaged;
  return row;
}
