// Temporary names for a copy that is renamed into place. Random (two containers in one bucket
// both run persist as pid 1..N, so a pid collides) and short enough for any name the file
// system accepts: NAME_MAX is 255 bytes, and a long name plus the suffix would exceed it.
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export const TEMP_INFIX = '.persist-tmp-';
const NAME_MAX = 255;

/** Per process: 8 random hex digits, then a counter (randomBytes for each name cost a restore of 2,000 files 35 ms). */
const processRandom = randomBytes(4).toString('hex');
let counter = 0;

/** `.<name>.persist-tmp-<random>` beside `path`; for a long name, `.persist-tmp-<hash of name>-<random>`. */
export function tempPathFor(path: string): string {
  const name = basename(path);
  counter = (counter + 1) & 0xffff;
  const random = `${processRandom}${counter.toString(16).padStart(4, '0')}`;
  const plain = `.${name}${TEMP_INFIX}${random}`;
  if (Buffer.byteLength(plain) <= NAME_MAX) return join(dirname(path), plain);
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return join(dirname(path), `${TEMP_INFIX}${digest}-${random}`);
}

/** tempPathFor's two forms, and the host's writeFileAtomic's (`.<name>.persist-tmp-<pid>-<8 hex>`). */
const TEMP_NAME = /^(\..+\.persist-tmp-([0-9a-f]{12}|\d+-[0-9a-f]{8})|\.persist-tmp-[0-9a-f]{16}-[0-9a-f]{12})$/s;

/**
 * Whether a base name is one of persist's temporaries (left by an interrupted copy): exactly the
 * forms persist makes, random part included, so that a user's `.notes.persist-tmp-draft` is a file.
 */
export function isTempName(base: string): boolean {
  return TEMP_NAME.test(base);
}
