#!/usr/bin/env node
// Launcher: the CLI is bundled into dist/ by `npm run build` (run by `npm ci` through `prepare`).
import('../dist/persist.mjs').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/persist.mjs')) {
    console.error('persist: dist/persist.mjs is missing; run `npm ci` (or `npm run build`) first.');
    process.exit(1);
  }
  throw error;
});
