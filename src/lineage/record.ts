// What this machine remembers (in its state folder, never the bucket) about each resource's
// lineage: the generation it last restored or pushed, the store it was synced with, and a digest
// of the local tree at that moment. Kept twice: per environment and address (what this
// environment saw), and per local path (which store the folder holds data of, whatever the
// environment: switching environments on one machine is seen there).
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { parseStamp, type LineageStamp, type StoreIdentity } from './generation.js';

export interface LocalRecord {
  environment: string;
  address: string;
  /** The local folder (or repo). */
  local: string;
  store: StoreIdentity;
  /** The generation last restored or pushed (0: a store written before lineage existed). */
  generation: number;
  /** The stamp of that generation as the store recorded it. */
  stamp: LineageStamp | null;
  /** sha256 of treeDigestInput of the local folder right after (null: unknown). */
  tree: string | null;
  /** ISO time of the event, and what it was. */
  at: string;
  event: 'push' | 'restore' | 'rollback' | 'seen';
  /**
   * A sync rollback: how many files the generation rolled back to holds, and how many of the
   * current generation's it left out (the push of the rolled-back folder removes them on purpose).
   */
  rollback?: { files: number; dropped: number };
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function lineageDir(env: Record<string, string | undefined>): string {
  return join(stateDir(env), 'lineage');
}

/** `<state>/lineage/env/<environment>/<address>.json` */
export function resourceRecordPath(env: Record<string, string | undefined>, environment: string, address: string): string {
  return join(lineageDir(env), 'env', environment, `${address}.json`);
}

/** `<state>/lineage/local/<sha256 of the local path, 24 digits>.json` */
export function localRecordPath(env: Record<string, string | undefined>, local: string): string {
  return join(lineageDir(env), 'local', `${hashOf(local).slice(0, 24)}.json`);
}

function parseIdentity(value: unknown): StoreIdentity | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const opt = (x: unknown): x is string | null => x === null || typeof x === 'string';
  if (typeof v.bucket !== 'string' || typeof v.key !== 'string' || !opt(v.endpoint) || !opt(v.prefix) || !opt(v.path)) return null;
  return { bucket: v.bucket, endpoint: v.endpoint, prefix: v.prefix, key: v.key, path: v.path };
}

function isRollbackCounts(value: unknown): value is { files: number; dropped: number } {
  const v = value as { files?: unknown; dropped?: unknown } | null;
  return typeof v === 'object' && v !== null && Number.isInteger(v.files) && Number.isInteger(v.dropped);
}

function parseLocalRecord(text: string): LocalRecord | null {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    const store = parseIdentity(v.store);
    const events = ['push', 'restore', 'rollback', 'seen'];
    if (!store || typeof v.environment !== 'string' || typeof v.address !== 'string' || typeof v.local !== 'string') return null;
    if (!Number.isInteger(v.generation) || typeof v.at !== 'string' || !events.includes(v.event as string)) return null;
    return {
      environment: v.environment,
      address: v.address,
      local: v.local,
      store,
      generation: v.generation as number,
      stamp: parseStamp(v.stamp),
      tree: typeof v.tree === 'string' ? v.tree : null,
      at: v.at,
      event: v.event as LocalRecord['event'],
      ...(isRollbackCounts(v.rollback) ? { rollback: { files: v.rollback.files, dropped: v.rollback.dropped } } : {}),
    };
  } catch {
    return null;
  }
}

async function readRecord(host: Host, path: string): Promise<LocalRecord | null> {
  if (!(await host.stat(path))) return null;
  return parseLocalRecord((await host.readFile(path)).toString('utf8'));
}

export interface LocalRecords {
  /** What this environment's resource last saw. */
  resource: LocalRecord | null;
  /** What the local folder was last synced with (any environment). */
  folder: LocalRecord | null;
}

export async function readLocalRecords(host: Host, environment: string, address: string, local: string): Promise<LocalRecords> {
  const env = host.env();
  const [resource, folder] = await Promise.all([readRecord(host, resourceRecordPath(env, environment, address)), readRecord(host, localRecordPath(env, local))]);
  return { resource, folder };
}

export async function writeLocalRecord(host: Host, record: LocalRecord): Promise<void> {
  const env = host.env();
  const text = `${JSON.stringify(record)}\n`;
  for (const path of [resourceRecordPath(env, record.environment, record.address), localRecordPath(env, record.local)]) {
    await host.mkdir(join(path, '..'), { mode: 0o700 });
    await host.writeFileAtomic(path, text, { mode: 0o600 });
  }
}

/** The digest stored in LocalRecord.tree. */
export function treeDigest(input: string): string {
  return hashOf(input);
}

/** Forget what a local folder was synced with (it was moved aside: the place is clean). */
export async function forgetFolder(host: Host, local: string): Promise<void> {
  await host.remove(localRecordPath(host.env(), local));
}
