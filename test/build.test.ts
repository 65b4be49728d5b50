// The build's V8 code caches are what keep start-up near `node -e 0`; a cache that V8 rejects would
// only make persist slower, silently. Check that each cache exists, names the bundle, and is taken.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Module from 'node:module';
import { join, resolve } from 'node:path';
import { constants, Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

const dist = resolve(import.meta.dirname, '..', 'dist');

describe('build', () => {
  it.each(['persist.cjs.cache', 'persist.cjs.validate.cache'])('writes %s for the bundle, and V8 accepts it', (name) => {
    const bundle = join(dist, 'persist.cjs');
    const source = readFileSync(bundle, 'utf8');
    const cache = readFileSync(join(dist, name));
    const digest = createHash('sha256').update(source).digest();
    expect(cache.subarray(0, digest.length).equals(digest)).toBe(true);
    const script = new Script((Module as unknown as { wrap(code: string): string }).wrap(source), {
      filename: bundle,
      cachedData: cache.subarray(digest.length),
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    });
    expect(script.cachedDataRejected).toBe(false);
  });
});
