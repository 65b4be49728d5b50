// Names are bytes. A Linux file name is any bytes but `/` and NUL, not necessarily UTF-8; persist
// keeps paths as strings, so a byte that is not part of valid UTF-8 is carried in the string as a
// lone surrogate U+DC80..U+DCFF (Python's "surrogateescape", PEP 383). No valid UTF-8 decodes to a
// lone surrogate, so the mapping is lossless and never confuses two names; the Host turns such a
// string back into the exact bytes (see `fsPath`). JSON keeps lone surrogates as `\udcXX`, so a
// manifest records the real name. What such a name becomes in a bucket: docs/names.md.
import { isUtf8 } from 'node:buffer';

/** A lone low surrogate carrying one raw byte (not preceded by a high surrogate, as in a pair). */
const RAW_BYTE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;
const RAW_BYTES = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g;

/** The length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  const continuation = (at: number, low = 0x80, high = 0xbf) => at < bytes.length && bytes[at]! >= low && bytes[at]! <= high;
  if (b0 >= 0xc2 && b0 <= 0xdf) return continuation(i + 1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    // No overlong forms (E0 A0..), no surrogates (ED 80..9F).
    const low = b0 === 0xe0 ? 0xa0 : 0x80;
    const high = b0 === 0xed ? 0x9f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const low = b0 === 0xf0 ? 0x90 : 0x80;
    const high = b0 === 0xf4 ? 0x8f : 0xbf;
    return continuation(i + 1, low, high) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

/** A name's bytes as persist's string: UTF-8 where valid, each other byte as U+DC00 + byte. */
export function nameFromBytes(bytes: Uint8Array): string {
  if (isUtf8(bytes)) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  let out = '';
  let start = 0;
  let i = 0;
  while (i < bytes.length) {
    const length = sequenceLength(bytes, i);
    if (length > 0) {
      i += length;
      continue;
    }
    out += Buffer.from(bytes.subarray(start, i)).toString('utf8') + String.fromCharCode(0xdc00 + bytes[i]!);
    i += 1;
    start = i;
  }
  return out + Buffer.from(bytes.subarray(start)).toString('utf8');
}

/** The bytes a string stands for: the inverse of `nameFromBytes`. */
export function bytesOfName(name: string): Buffer {
  if (!RAW_BYTE.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (const match of name.matchAll(RAW_BYTES)) {
    parts.push(Buffer.from(name.slice(start, match.index), 'utf8'), Buffer.from([match[0].charCodeAt(0) - 0xdc00]));
    start = match.index + 1;
  }
  parts.push(Buffer.from(name.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** Whether a string carries bytes that are not UTF-8. */
export function hasRawBytes(name: string): boolean {
  return RAW_BYTE.test(name);
}

/** What to hand node:fs: the string itself, or its exact bytes when it carries raw bytes. */
export function fsPath(path: string | Buffer): string | Buffer {
  return typeof path === 'string' && RAW_BYTE.test(path) ? bytesOfName(path) : path;
}

/** A path as persist's string (a Buffer decoded losslessly). */
export function pathString(path: string | Buffer): string {
  return typeof path === 'string' ? path : nameFromBytes(path);
}
