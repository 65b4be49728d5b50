// Records of the conflict copies adopt makes (`<name>.persist-conflict-<stamp>`, merge.ts), so that
// `persist clean` removes a file of that name only when persist made it and it is still the file
// persist made: a name alone proves nothing (an agent may write `report.persist-conflict-2025...`
// through the link, and that is its file).
//
// Where the record lives: in the bucket, one small JSON object per copy under
// `.persist-conflicts/<sha256 of the copy's key>.json` at the root of the bucket (under its prefix,
// where the lease lives too), written when the copy is made (before it is renamed into place, so
// that no copy of persist's ever exists unrecorded). Not in the local state folder: containers are
// thrown away, and the copy outlives the one that made it; the next container's `clean` must still
// be able to tell persist's copy from a user's file, so the record must travel with the bucket.
// Not beside the copy either: the link's folder is the agent's, and a record there would be one
// more file it sees, edits or deletes. At the bucket root it is outside every link target (a path
// in a mount is never the mount itself) and no resource claims a `.persist-` name.
//
// A record holds the copy's key, size and sha256: clean removes the copy only when all three still
// match (an edited copy is the user's now), and removes the record with it.
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Host } from '../../host/types.js';

/** The folder of records, relative to the bucket's root (its prefix). */
export const CONFLICT_RECORDS_DIR = '.persist-conflicts';

export interface ConflictRecord {
  version: 1;
  /** The copy's key, relative to the bucket's root (its prefix): `workspace/memory/a.md.persist-conflict-...`. */
  key: string;
  size: number;
  sha256: string;
  madeAt: string;
}

/** Where the record of the copy at `key` lives, relative to the bucket's root. */
export function conflictRecordKey(key: string): string {
  return `${CONFLICT_RECORDS_DIR}/${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`;
}

/** A record read back, or null when it is not one (half-written, foreign, another key's). */
export function parseConflictRecord(data: Buffer, key: string): ConflictRecord | null {
  try {
    const record = JSON.parse(data.toString('utf8')) as Partial<ConflictRecord>;
    if (record.version !== 1 || record.key !== key || typeof record.size !== 'number' || typeof record.sha256 !== 'string') return null;
    return record as ConflictRecord;
  } catch {
    return null;
  }
}

/** The mount's root, from a link's absolute target and its path in the mount (`<mount>/<relTarget>`). */
export function mountRootOf(target: string, relTarget: string): string {
  let root = target;
  for (let depth = relTarget.split('/').length; depth > 0; depth--) root = dirname(root);
  return root;
}

/** Record that persist is about to place the file at `file` (its current bytes) as the conflict copy at `key`. */
export async function recordConflictCopy(host: Host, mountRoot: string, key: string, file: string): Promise<void> {
  const info = await host.lstat(file);
  if (info?.type !== 'file') return;
  const record: ConflictRecord = { version: 1, key, size: info.size, sha256: await host.hashFile(file), madeAt: host.now().toISOString() };
  const path = join(mountRoot, conflictRecordKey(key));
  await host.mkdir(dirname(path));
  await host.writeFileAtomic(path, `${JSON.stringify(record)}\n`);
}
