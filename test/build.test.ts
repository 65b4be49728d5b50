// The build's V8 code caches are what keep start-up near `node -e 0`; a cache that V8 rejects would
// only make persist slower, silently. Check that each cache exists, names the bundle, and is taken.
import { readFileSync, statSync } from 'node:fs';
import Module from 'node:module';
import { join, resolve } from 'node:path';
import { constants, Script } from 'node:vm';
import { describe, expect, it } from 'vitest';

const dist = resolve(import.meta.dirname, '..', 'dist');

describe('build', () => {
  it.each(['persist.cjs.cache', 'persist.cjs.validate.cache'])('writes %s for the bundle, and V8 accepts it', (name) => {
    const bundle = join(dist, 'persist.cjs');
    const bytes = readFileSync(bundle);
    const source = bytes.toString('latin1');
    expect(source).toBe(bytes.toString('utf8')); // only ASCII: the launcher reads it as latin1
    const cache = readFileSync(join(dist, name));
    const { size, mtimeMs, ino } = statSync(bundle);
    const identity = Buffer.from(`${size}:${mtimeMs}:${ino}\n`);
    expect(cache.subarray(0, identity.length).toString()).toBe(identity.toString());
    const script = new Script((Module as unknown as { wrap(code: string): string }).wrap(source), {
      filename: bundle,
      cachedData: cache.subarray(identity.length),
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    });
    expect(script.cachedDataRejected).toBe(false);
  });
});
