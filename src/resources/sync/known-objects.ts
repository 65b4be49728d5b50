// The large objects of a sync as this machine last transferred them (uploaded or downloaded):
// per path, the size and sha256 of the bytes and the ETag the object then had. It is what lets a
// push of a file that only grew (an agent's transcript) send only its new tail (Store.uploadGrown):
// the ETag binds the object to those bytes, and every server-side copy of it is conditional on
// that ETag, so an object changed since (by another machine, or a push that stopped before its
// manifest) is uploaded whole. The manifest's hash alone could not say that: after an interrupted
// push it may describe bytes the object no longer holds.
//
// Kept on local disk beside the sync's state (never in the bucket); a lost or stale record only
// costs a whole upload. Only stores with ETags (the S3 API) give one.
import { dirname } from 'node:path';
import type { Host } from '../../host/types.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { KnownObject, Transferred } from '../../store/types.js';
import { syncStatePath } from './state.js';

/** Objects at least this large are recorded (smaller ones are uploaded whole anyway). */
export const KNOWN_OBJECT_MIN_SIZE = 4 * 1024 * 1024;

export type KnownObjects = Record<string, KnownObject>;

function knownObjectsPath(host: Host, sync: ResolvedSync): string {
  return syncStatePath(host, sync).replace(/\.json$/, '.objects.json');
}

function isKnownObject(value: unknown): value is KnownObject {
  const v = value as KnownObject;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.size) && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256) && typeof v.etag === 'string' && v.etag !== '';
}

export async function readKnownObjects(host: Host, sync: ResolvedSync): Promise<KnownObjects> {
  const path = knownObjectsPath(host, sync);
  if (!(await host.stat(path))) return {};
  try {
    const data = JSON.parse((await host.readFile(path)).toString('utf8')) as Record<string, unknown>;
    const known: KnownObjects = {};
    for (const [file, value] of Object.entries(data)) if (isKnownObject(value)) known[file] = { size: value.size, sha256: value.sha256, etag: value.etag };
    return known;
  } catch {
    return {}; // damaged: the next push of a grown file is a whole upload
  }
}

export async function writeKnownObjects(host: Host, sync: ResolvedSync, known: KnownObjects): Promise<void> {
  const path = knownObjectsPath(host, sync);
  if (Object.keys(known).length === 0 && !(await host.stat(path))) return;
  await host.mkdir(dirname(path), { mode: 0o700 });
  await host.writeFileAtomic(path, `${JSON.stringify(known)}\n`, { mode: 0o600 });
}

/** Record (or forget) what a transfer of `path` left in the store. */
export function noteTransfer(known: KnownObjects, path: string, transferred: Transferred): void {
  if (transferred.etag && transferred.size >= KNOWN_OBJECT_MIN_SIZE) known[path] = { size: transferred.size, sha256: transferred.sha256, etag: transferred.etag };
  else delete known[path];
}
