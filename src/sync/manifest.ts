// The manifest a sync keeps in its mirror: `<mirror>/.persist-sync.json`. It lists every file
// persist wrote into the mirror (size, mtime, sha256, mode) and is what plan compares the local
// folder with, so that observing a sync reads one object from the bucket instead of every file.
// It is also the source of truth for the modes and mtimes a restore gives back (FUSE backends
// may not keep either).
import { join } from 'node:path';
import { PersistError } from '../errors.js';
import type { Host } from '../host/types.js';

export const MANIFEST_NAME = '.persist-sync.json';

export interface ManifestEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
  /** Permission bits, e.g. 0o644 (stored as a JSON number). */
  mode: number;
}

export interface SyncManifest {
  version: 1;
  /** Relative `/`-separated path → entry. */
  files: Record<string, ManifestEntry>;
  /** When the mirror was last pushed (ISO 8601). */
  pushedAt: string;
  /** When the mirror was last restored from; persist itself never writes it (see state.ts). */
  restoredAt?: string;
}

/** The manifest is unreadable or not in the expected shape. */
export class ManifestError extends PersistError {}

export function manifestPath(mirrorDir: string): string {
  return join(mirrorDir, MANIFEST_NAME);
}

function isEntry(value: unknown): value is ManifestEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    Number.isInteger(entry.size) &&
    (entry.size as number) >= 0 &&
    typeof entry.mtimeMs === 'number' &&
    Number.isFinite(entry.mtimeMs) &&
    typeof entry.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(entry.sha256) &&
    Number.isInteger(entry.mode) &&
    (entry.mode as number) >= 0 &&
    (entry.mode as number) <= 0o7777
  );
}

function isSafeRelativePath(path: string): boolean {
  return path !== '' && !path.startsWith('/') && path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** Parse and check a manifest's text; `source` names the file in errors. */
export function parseManifest(text: string, source: string): SyncManifest {
  const expected = 'expected {"version": 1, "files": {<path>: {size, mtimeMs, sha256, mode}}, "pushedAt": <ISO date>}';
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`${source}: not valid JSON (${(error as Error).message}); ${expected}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ManifestError(`${source}: ${expected}`);
  const doc = data as Record<string, unknown>;
  if (doc.version !== 1) throw new ManifestError(`${source}: unsupported version ${JSON.stringify(doc.version)}; expected 1`);
  if (typeof doc.pushedAt !== 'string' || Number.isNaN(Date.parse(doc.pushedAt))) {
    throw new ManifestError(`${source}: "pushedAt" must be an ISO date; ${expected}`);
  }
  if (doc.restoredAt !== undefined && (typeof doc.restoredAt !== 'string' || Number.isNaN(Date.parse(doc.restoredAt)))) {
    throw new ManifestError(`${source}: "restoredAt" must be an ISO date`);
  }
  if (typeof doc.files !== 'object' || doc.files === null || Array.isArray(doc.files)) throw new ManifestError(`${source}: "files" must be an object; ${expected}`);
  const files: Record<string, ManifestEntry> = {};
  for (const [path, entry] of Object.entries(doc.files as Record<string, unknown>)) {
    // A path escaping the mirror would let a hand-edited manifest make restore write anywhere.
    if (!isSafeRelativePath(path)) throw new ManifestError(`${source}: file path ${JSON.stringify(path)} must be relative and stay inside the folder`);
    if (!isEntry(entry)) throw new ManifestError(`${source}: files[${JSON.stringify(path)}] must be {size, mtimeMs, sha256 (64 hex digits), mode}`);
    files[path] = { size: entry.size, mtimeMs: entry.mtimeMs, sha256: entry.sha256, mode: entry.mode };
  }
  const manifest: SyncManifest = { version: 1, files, pushedAt: doc.pushedAt };
  if (typeof doc.restoredAt === 'string') manifest.restoredAt = doc.restoredAt;
  return manifest;
}

/** Stable text: files sorted by path, so that equal manifests are equal bytes. */
export function serializeManifest(manifest: SyncManifest): string {
  const files: Record<string, ManifestEntry> = {};
  for (const path of Object.keys(manifest.files).sort()) {
    const e = manifest.files[path]!;
    files[path] = { size: e.size, mtimeMs: e.mtimeMs, sha256: e.sha256, mode: e.mode };
  }
  const doc: SyncManifest = { version: 1, files, pushedAt: manifest.pushedAt };
  if (manifest.restoredAt !== undefined) doc.restoredAt = manifest.restoredAt;
  return `${JSON.stringify(doc, null, 1)}\n`;
}

/** The mirror's manifest, or null when it has none. Throws ManifestError when it is unreadable. */
export async function readManifest(host: Host, mirrorDir: string): Promise<SyncManifest | null> {
  const path = manifestPath(mirrorDir);
  const info = await host.stat(path);
  if (!info) return null;
  if (info.type !== 'file') throw new ManifestError(`${path}: expected a file, found a ${info.type}`);
  return parseManifest((await host.readFile(path)).toString('utf8'), path);
}

/** Write the manifest atomically (temporary name, fsync, rename). */
export async function writeManifest(host: Host, mirrorDir: string, manifest: SyncManifest): Promise<void> {
  await host.writeFileAtomic(manifestPath(mirrorDir), serializeManifest(manifest), { mode: 0o644 });
}
