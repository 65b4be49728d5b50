// Generations: what the store records about each push of a sync and each update of a bundle
// (number, parent, time, machine), and the identity of the place in a store a local folder is
// synced with. Pure types and parsing; the sync and bundle modules decide where the records live.
import type { ResolvedBucket } from '../spec/types.js';

/** The record of one generation, written in the store beside the data. */
export interface GenerationRecord {
  generation: number;
  /** The generation this one was made on top of (null for the first). */
  parent: number | null;
  /** ISO 8601. */
  time: string;
  /** The writer's machine id (null for a generation made before lineage existed). */
  machine: string | null;
  host: string | null;
  files: number;
  bytes: number;
}

/** The short form carried by the data's own head (a sync's root manifest, a bundle's metadata). */
export interface LineageStamp {
  generation: number;
  parent: number | null;
  time: string;
  machine: string | null;
  host: string | null;
}

/** Where in which store a resource's data lives: compared to tell one bucket (or path) from another. */
export interface StoreIdentity {
  bucket: string;
  endpoint: string | null;
  prefix: string | null;
  /** The key of the data (a sync's mirror folder, a bundle's file). */
  key: string;
  /** For the `local` backend the folder is the bucket. */
  path: string | null;
}

export function storeIdentity(bucket: ResolvedBucket, key: string): StoreIdentity {
  const prefix = (bucket as { prefix?: unknown }).prefix;
  return {
    bucket: bucket.name,
    endpoint: bucket.endpoint ?? null,
    prefix: typeof prefix === 'string' && prefix !== '' ? prefix : null,
    key,
    path: bucket.mount?.backend === 'local' ? bucket.mount.path : null,
  };
}

export function sameStore(a: StoreIdentity, b: StoreIdentity): boolean {
  return a.bucket === b.bucket && a.endpoint === b.endpoint && a.prefix === b.prefix && a.key === b.key && a.path === b.path;
}

/** `bucket moltbot-data-development, clawdbot` */
export function describeStore(identity: StoreIdentity): string {
  const where = identity.path ? ` (${identity.path})` : identity.endpoint ? ` at ${identity.endpoint}` : '';
  const prefix = identity.prefix ? `${identity.prefix}/` : '';
  return `bucket ${identity.bucket}${where}, ${prefix}${identity.key}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const nullableString = (value: unknown): value is string | null => value === null || typeof value === 'string';
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

export function parseStamp(value: unknown): LineageStamp | null {
  if (!isObject(value)) return null;
  const { generation, parent, time, machine, host } = value;
  if (!isCount(generation) || !(parent === null || isCount(parent)) || typeof time !== 'string' || Number.isNaN(Date.parse(time))) return null;
  if (!nullableString(machine) || !nullableString(host)) return null;
  return { generation, parent, time, machine, host };
}

export function parseRecord(value: unknown): GenerationRecord | null {
  const stamp = parseStamp(value);
  if (!stamp || !isObject(value) || !isCount(value.files) || !isCount(value.bytes)) return null;
  return { ...stamp, files: value.files, bytes: value.bytes };
}

export function serializeRecord(record: GenerationRecord): string {
  const { generation, parent, time, machine, host, files, bytes } = record;
  return `${JSON.stringify({ generation, parent, time, machine, host, files, bytes })}\n`;
}

/** Generations to prune so that `keep` remain, the newest kept: every one numbered below current - keep + 1. */
export function generationsToPrune(present: number[], current: number, keep: number): number[] {
  const lowest = current - Math.max(1, keep) + 1;
  return present.filter((generation) => generation < lowest).sort((a, b) => a - b);
}

/** A stable digest of a local listing (paths, sizes, mtimes, modes): did the folder change since it was seen? */
export function treeDigestInput(files: Record<string, { size: number; mtimeMs: number; mode: number }>): string {
  return Object.keys(files)
    .sort()
    .map((path) => {
      const file = files[path]!;
      return `${path}\0${file.size}\0${Math.floor(file.mtimeMs)}\0${file.mode}`;
    })
    .join('\n');
}
