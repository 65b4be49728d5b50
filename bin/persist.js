#!/usr/bin/env node
// Launcher. The CLI is one CommonJS bundle, dist/persist.cjs, built by `npm run build` (which
// `npm ci` runs). It is compiled with a V8 code cache made at build time, because start-up
// matters (plan runs at every container boot) and Node 20 has no compile cache of its own. Two
// caches, each holding the code one kind of run needs (a smaller cache loads faster):
// dist/persist.cjs.validate.cache for `validate` (the YAML parser), dist/persist.cjs.cache for
// every other command (a converged plan). A missing or stale cache only costs speed: the cache
// names the bundle it was made from (its size, modification time and inode: every build writes a
// new file; hashing it instead would load node:crypto, 5 ms that `validate` otherwise never
// pays), and V8 itself rejects a cache made by another Node version.
// CommonJS itself (bin/package.json): an ES module entry point would first start Node's ESM
// loader, which costs more than the rest of this file.
'use strict';
const { closeSync, fstatSync, openSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname, join } = require('node:path');
const { constants, Script } = require('node:vm');

const bundle = join(__dirname, '..', 'dist', 'persist.cjs');
const command = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
const cacheFile = `${bundle}${command === 'validate' ? '.validate' : ''}.cache`;
let bytes;
let identity;
try {
  // Named and read through one descriptor: a build that replaces the file meanwhile cannot pair
  // one bundle's name with the other's text.
  const fd = openSync(bundle, 'r');
  const { size, mtimeMs, ino } = fstatSync(fd);
  identity = Buffer.from(`${size}:${mtimeMs}:${ino}\n`);
  bytes = readFileSync(fd);
  closeSync(fd);
} catch {
  console.error('persist: dist/persist.cjs is missing; run `npm ci` (or `npm run build`) first.');
  process.exit(1);
}
// The build leaves only ASCII in the bundle (scripts/build.mjs): read as latin1, the bytes are the
// text without a UTF-8 decoding of 800 KB.
const source = bytes.toString('latin1');
// The build sets this to write the cache after one representative run.
const writeCache = process.env.PERSIST_WRITE_CODE_CACHE === '1';
let cachedData;
if (!writeCache) {
  try {
    const file = readFileSync(cacheFile);
    if (file.subarray(0, identity.length).equals(identity)) cachedData = file.subarray(identity.length);
  } catch {
    // no cache: compile from source
  }
}
const script = new Script(Module.wrap(source), {
  filename: bundle,
  cachedData,
  // The build refuses a bundle that leaves an import() to Node (see scripts/build.mjs); this only
  // keeps one that slipped through working when its function is not from the cache.
  importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
const bundled = { exports: {} };
script.runInThisContext()(bundled.exports, Module.createRequire(bundle), bundled, bundle, dirname(bundle));
bundled.exports.main(process.argv).then(() => {
  if (writeCache) {
    const temporary = `${cacheFile}.${process.pid}`;
    writeFileSync(temporary, Buffer.concat([identity, script.createCachedData()]));
    renameSync(temporary, cacheFile);
  }
  // The command is done. Leaving by the end of the event loop would first tear the heap down:
  // 4-10 ms after a plan, 10-15 ms after a restore of 2,000 files. So leave now, unless output is
  // still queued (a pipe that is full takes the rest later): the event loop then writes it first.
  // A command that never settles still ends by the event loop (src/cli.ts reports it).
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit();
});
