#!/usr/bin/env node
// Launcher. The CLI is one CommonJS bundle, dist/persist.cjs, built by `npm run build` (which
// `npm ci` runs). It is compiled with the V8 code cache made at build time
// (dist/persist.cjs.cache), because start-up matters (plan runs at every container boot) and
// Node 20 has no compile cache of its own. A missing or stale cache only costs speed: the cache
// names the bundle's sha256, and V8 itself rejects a cache made by another Node version.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, Script } from 'node:vm';

const bundle = fileURLToPath(new URL('../dist/persist.cjs', import.meta.url));
const cacheFile = `${bundle}.cache`;
let source;
try {
  source = readFileSync(bundle, 'utf8');
} catch {
  console.error('persist: dist/persist.cjs is missing; run `npm ci` (or `npm run build`) first.');
  process.exit(1);
}
const digest = createHash('sha256').update(source).digest();
// The build sets this to write the cache after one representative run.
const writeCache = process.env.PERSIST_WRITE_CODE_CACHE === '1';
let cachedData;
if (!writeCache) {
  try {
    const file = readFileSync(cacheFile);
    if (file.subarray(0, digest.length).equals(digest)) cachedData = file.subarray(digest.length);
  } catch {
    // no cache: compile from source
  }
}
const script = new Script(Module.wrap(source), {
  filename: bundle,
  cachedData,
  // import() inside the bundle (Node built-ins) resolves as it would in a module of its own.
  importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
const module = { exports: {} };
script.runInThisContext()(module.exports, Module.createRequire(bundle), module, bundle, dirname(bundle));
await module.exports.main(process.argv);
if (writeCache) {
  const temporary = `${cacheFile}.${process.pid}`;
  writeFileSync(temporary, Buffer.concat([digest, script.createCachedData()]));
  renameSync(temporary, cacheFile);
}
