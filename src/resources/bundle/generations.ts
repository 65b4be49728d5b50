// Lineage of a bundle: each update writes a small metadata record beside the bundle
// (`<file>.lineage.json`: generation, parent, time, machine, host, refs as files, bytes), rotated
// with the bundle's own generations (`<file>.<k>.lineage.json` describes `<file>.<k>`).
import type { Store } from '../../store/types.js';
import type { Host } from '../../host/types.js';
import type { ResolvedBundle } from '../../spec/types.js';
import type { Decision, ObserveContext, PlanOptions } from '../../engine/types.js';
import type { ResolvedEnvironment } from '../../spec/types.js';
import { describeMachine, ensureMachine, peekMachine } from '../../lineage/machine.js';
import { describeStore, parseRecord, sameStore, serializeRecord, storeIdentity, type GenerationRecord, type StoreIdentity } from '../../lineage/generation.js';
import { readLocalRecords, writeLocalRecord } from '../../lineage/record.js';
import type { HistoryEntry } from '../sync/generations.js';

export function metadataKey(file: string, rotation = 0): string {
  return rotation === 0 ? `${file}.lineage.json` : `${file}.${rotation}.lineage.json`;
}

async function readMetadata(store: Store, key: string): Promise<GenerationRecord | null> {
  if (!(await store.stat(key))) return null;
  try {
    return parseRecord(JSON.parse((await store.read(key)).toString('utf8')));
  } catch {
    return null;
  }
}

/** The current bundle's record (null: none, e.g. written before lineage). */
export function currentBundleRecord(store: Store, bundle: ResolvedBundle): Promise<GenerationRecord | null> {
  return readMetadata(store, metadataKey(bundle.relFile));
}

/**
 * After writeBundle rotated the bundles and wrote the new one: rotate the records the same way
 * and write the new generation's. `previous` is the record the current bundle had before.
 */
export async function recordBundleGeneration(host: Host, store: Store, bundle: ResolvedBundle, previous: GenerationRecord | null, refs: number, bytes: number): Promise<GenerationRecord> {
  const machine = await ensureMachine(host);
  for (let rotation = bundle.keep - 1; rotation >= 1; rotation--) {
    const from = metadataKey(bundle.relFile, rotation);
    if (await store.stat(from)) await store.rename(from, metadataKey(bundle.relFile, rotation + 1));
  }
  if (previous && bundle.keep >= 1) await store.write(metadataKey(bundle.relFile, 1), serializeRecord(previous));
  const generation = (previous?.generation ?? 0) + 1;
  const record: GenerationRecord = { generation, parent: previous?.generation ?? null, time: host.now().toISOString(), machine: machine.id, host: machine.host, files: refs, bytes };
  await store.write(metadataKey(bundle.relFile), serializeRecord(record));
  return record;
}

/** Generations kept: the current bundle and its rotated files that have a record, oldest first. */
export async function bundleHistory(bundle: ResolvedBundle, store: Store): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  for (let rotation = 0; rotation <= bundle.keep; rotation++) {
    const file = rotation === 0 ? bundle.relFile : `${bundle.relFile}.${rotation}`;
    if (!(await store.stat(file))) continue;
    const record = await readMetadata(store, metadataKey(bundle.relFile, rotation));
    if (record) entries.push({ ...record, current: rotation === 0 });
  }
  return entries.sort((a, b) => a.generation - b.generation);
}

// --- lineage rules for bundles (the same as a sync's, where a repo allows them) ---

export interface BundleLineage {
  store: StoreIdentity;
  /** The store's current generation (null: no record, e.g. written before lineage). */
  current: GenerationRecord | null;
  /** The generation this environment's bundle last saw in this store. */
  seen: number | null;
  /** The repo was last saved to or restored from another store. */
  foreign: { store: StoreIdentity; environment: string; event: string; at: string } | null;
  /** This machine's id, when it has one. */
  me: string | null;
}

export async function observeBundleLineage(bundle: ResolvedBundle, ctx: Pick<ObserveContext, 'host' | 'env'>, store: Store | null): Promise<BundleLineage> {
  const { host, env } = ctx;
  const identity = storeIdentity(env.buckets[bundle.bucket]!, bundle.relFile);
  const records = await readLocalRecords(host, env.environment, `bundle.${bundle.name}`, bundle.repo);
  const current = store ? await currentBundleRecord(store, bundle) : null;
  const me = await peekMachine(host);
  let seen = records.resource && sameStore(records.resource.store, identity) ? records.resource.generation : null;
  if (current && me && current.machine === me.id && (seen === null || seen < current.generation)) seen = current.generation;
  const folder = records.folder;
  const foreign = folder && !sameStore(folder.store, identity) ? { store: folder.store, environment: folder.environment, event: folder.event, at: folder.at } : null;
  return { store: identity, current, seen, foreign, me: me?.id ?? null };
}

/** For a planned update (or first save): a conflict when lineage forbids it; null when it may go ahead. Pure. */
export function bundleLineageConflict(bundle: ResolvedBundle, lineage: BundleLineage | undefined, options: PlanOptions): Decision | null {
  if (!lineage) return null;
  const address = `bundle.${bundle.name}` as Decision['address'];
  const conflict = (message: string, fix: string, overrideFlag?: string): Decision => ({
    address,
    kind: 'bundle',
    action: 'conflict',
    phase: 'push',
    reason: message,
    changes: [],
    conflict: { message, fix, ...(overrideFlag ? { overrideFlag } : {}) },
  });
  if (lineage.foreign) {
    const { foreign } = lineage;
    return conflict(
      `${bundle.repo} holds the repo of ${describeStore(foreign.store)} (environment ${foreign.environment}, last ${foreign.event} ${foreign.at}); it is never saved into ${describeStore(lineage.store)}`,
      `To start clean, move the repo aside (mv ${bundle.repo} ${bundle.repo}.${foreign.environment}) and apply again: it is restored from ${bundle.relFile} if that exists.`,
    );
  }
  const current = lineage.current;
  if (!current || lineage.seen === null || lineage.seen >= current.generation || options.forcePush) return null;
  return conflict(
    `${bundle.relFile} holds generation ${current.generation}, written by ${describeMachine({ id: current.machine, host: current.host })} at ${current.time}, newer than generation ${lineage.seen} this machine last saw; an update would replace it`,
    `To take the store's, move ${bundle.repo} aside and apply (it is restored from the bundle). To save this repo over it (generation ${current.generation} stays as ${bundle.relFile}.1): persist apply --force-push.`,
    '--force-push',
  );
}

/** After an update or a restore: this machine has seen the bundle's current generation. */
export async function recordBundleSeen(host: Host, env: ResolvedEnvironment, bundle: ResolvedBundle, record: GenerationRecord | null, event: 'push' | 'restore'): Promise<void> {
  await writeLocalRecord(host, {
    environment: env.environment,
    address: `bundle.${bundle.name}`,
    local: bundle.repo,
    store: storeIdentity(env.buckets[bundle.bucket]!, bundle.relFile),
    generation: record?.generation ?? 0,
    stamp: record ? { generation: record.generation, parent: record.parent, time: record.time, machine: record.machine, host: record.host } : null,
    tree: null,
    at: host.now().toISOString(),
    event,
  });
}
