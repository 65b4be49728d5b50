// Lineage of a bundle: each update writes a small metadata record beside the bundle
// (`<file>.lineage.json`: generation, parent, time, machine, host, refs as files, bytes), rotated
// with the bundle's own generations (`<file>.<k>.lineage.json` describes `<file>.<k>`).
import type { Store } from '../../store/types.js';
import type { Host } from '../../host/types.js';
import type { ResolvedBundle } from '../../spec/types.js';
import { ensureMachine } from '../../lineage/machine.js';
import { parseRecord, serializeRecord, type GenerationRecord } from '../../lineage/generation.js';
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
