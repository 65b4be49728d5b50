// Names in a bucket. A file's name is bytes (held as a string: host/names.ts); a key in a bucket
// must be valid UTF-8 (S3 keys are, and s3fs passes a file name through to the key) and must never
// look like one of persist's own files there (manifests, shards, folder modes, temporaries,
// conflict copies: all their names contain `.persist-`). `keyName` gives each name its key:
// itself, or an escaped form that is reversible and collides with no other name. docs/names.md
// shows what a key looks like in the bucket and why.
import { createHash } from 'node:crypto';
import { bytesOfName, hasRawBytes, nameFromBytes } from '../host/names.js';

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
