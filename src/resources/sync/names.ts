// Where a synced file lives in the store: its key. A file's path is its real name (bytes, held as
// a string: host/names.ts); its key must be valid UTF-8 (S3 keys are, and s3fs passes a file name
// through to the key) and must never look like one of persist's own files in the mirror (the
// manifest, its shards, the folder modes, temporaries, conflict copies: all their names contain
// `.persist-`). So each component of the path that is not UTF-8, contains `.persist-` or starts
// with the escape mark is stored escaped; every other name is its own key. docs/names.md shows
// what a key looks like in the bucket and why the mapping is reversible and collision-free.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { bytesOfName, hasRawBytes, nameFromBytes } from '../../host/names.js';
import type { ResolvedSync } from '../../spec/types.js';
import type { Store, StoreListing } from '../../store/types.js';
import { isTempName } from '../../store/temp-name.js';
import { FOLDERS_NAME } from './folders.js';
import { createPathMatcher, type PathMatcher } from './glob.js';
import { MANIFEST_NAME, SHARD_DIR_NAME } from './manifest.js';

/** Starts every escaped name; a real name starting with it is escaped itself. */
export const ESCAPE_MARK = '%persist%';
/** Starts the key of a name too long to escape within NAME_MAX (its sha256 follows). */
const HASHED_MARK = `${ESCAPE_MARK}#`;
/** What every name of persist's own in a bucket contains. */
const OWN_INFIX = '.persist-';
/** Longest name a file system (and so a FUSE mount of the bucket) takes, in bytes. */
const NAME_MAX = 255;

function needsEscape(name: string): boolean {
  return hasRawBytes(name) || name.includes(OWN_INFIX) || name.startsWith(ESCAPE_MARK);
}

const hex = (byte: number) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;

/**
 * A file's name in the store. Escaped: the mark, then the name with each byte that is not part
 * of valid UTF-8, each `%`, and the `.` of each `.persist-` written as `%XX`.
 */
export function keyName(name: string): string {
  if (!needsEscape(name)) return name;
  let escaped = ESCAPE_MARK;
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    const previous = i > 0 ? name.charCodeAt(i - 1) : 0;
    const raw = unit >= 0xdc80 && unit <= 0xdcff && !(previous >= 0xd800 && previous <= 0xdbff);
    if (raw) escaped += hex(unit - 0xdc00);
    else if (name[i] === '%') escaped += hex(0x25);
    else if (name.startsWith(OWN_INFIX, i)) escaped += hex(0x2e);
    else escaped += name[i];
  }
  if (Buffer.byteLength(escaped) <= NAME_MAX) return escaped;
  return `${HASHED_MARK}${createHash('sha256').update(bytesOfName(name)).digest('hex')}`;
}

/** The name a key stands for (a key persist did not escape is a name of its own). */
export function nameOfKey(key: string): string {
  if (!key.startsWith(ESCAPE_MARK) || key.startsWith(HASHED_MARK)) return key;
  const body = key.slice(ESCAPE_MARK.length);
  const bytes: Buffer[] = [];
  for (let i = 0; i < body.length; ) {
    if (body[i] === '%') {
      if (!/^[0-9A-F]{2}$/.test(body.slice(i + 1, i + 3))) return key;
      bytes.push(Buffer.from([parseInt(body.slice(i + 1, i + 3), 16)]));
      i += 3;
    } else {
      const next = body.indexOf('%', i);
      const end = next < 0 ? body.length : next;
      bytes.push(Buffer.from(body.slice(i, end), 'utf8'));
      i = end;
    }
  }
  const name = nameFromBytes(Buffer.concat(bytes));
  // Only the one key persist makes for a name decodes to it: no two keys share a name.
  return keyName(name) === key ? name : key;
}

/** A relative path's key, component by component. */
export function relativeKey(path: string): string {
  return path.split('/').map(keyName).join('/');
}

/** A relative key's path. */
export function pathOfKey(key: string): string {
  return key.split('/').map(nameOfKey).join('/');
}

/** The store key of a synced file. */
export function mirrorKey(sync: Pick<ResolvedSync, 'relTo'>, path: string): string {
  return join(sync.relTo, relativeKey(path));
}

/**
 * The key holding a synced file's bytes: its key, or, for a mirror pushed before names were
 * escaped, the file's own name when only that exists.
 */
export async function storedKey(store: Store, sync: Pick<ResolvedSync, 'relTo'>, path: string): Promise<string> {
  const key = mirrorKey(sync, path);
  const legacy = join(sync.relTo, path);
  if (legacy === key || hasRawBytes(legacy) || (await store.stat(key))) return key;
  return (await store.stat(legacy)) ? legacy : key;
}

/** persist's own files in a mirror: the manifest root, its shard folder, the folder modes, temporaries. */
function isOwnKey(relativeKeyPath: string): boolean {
  if (relativeKeyPath === MANIFEST_NAME || relativeKeyPath === FOLDERS_NAME) return true;
  if (relativeKeyPath === SHARD_DIR_NAME || relativeKeyPath.startsWith(`${SHARD_DIR_NAME}/`)) return true;
  return isTempName(relativeKeyPath.slice(relativeKeyPath.lastIndexOf('/') + 1));
}

/**
 * A mirror's files as paths (a mirror made without persist, read through its listing): persist's
 * own files left out, keys turned back into names, the sync's excludes applied to the names.
 */
export async function listMirror(store: Store, sync: Pick<ResolvedSync, 'relTo' | 'exclude'>): Promise<StoreListing> {
  const user = createPathMatcher(sync.exclude);
  const listing = await store.list(sync.relTo, (key) => isOwnKey(key) || user(pathOfKey(key)));
  const files: StoreListing['files'] = {};
  for (const key of Object.keys(listing.files)) files[pathOfKey(key)] = listing.files[key]!;
  return { files: Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), skipped: listing.skipped.map(pathOfKey) };
}

/** The local side: the sync's excludes, and the temporaries an interrupted restore left (`.<name>.persist-tmp-<random>`). */
export function localExcluder(patterns: readonly string[]): PathMatcher {
  const user = createPathMatcher(patterns);
  return (relativePath) => isTempName(relativePath.slice(relativePath.lastIndexOf('/') + 1)) || user(relativePath);
}
