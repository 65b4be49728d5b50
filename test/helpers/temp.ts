// Temporary folders that remove themselves: made inside a test, a folder is removed when the test
// ends; made outside one (a module's setup, beforeAll), when the test file ends. A folder with a
// mount inside is never removed (that could delete a bucket's content): it is reported instead,
// and the run's check (test/global-setup.ts) then fails on what is left in $TMPDIR.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, onTestFinished } from 'vitest';
import { removeFolder } from './remove.js';

export { removeFolder };

const pending: string[] = [];
// Registered when a test file imports this module (through a helper), so it runs at the file's end.
afterAll(() => {
  for (const path of pending.splice(0)) removeFolder(path);
});

/** A new folder under $TMPDIR, removed when the current test (else the test file) ends. */
export function autoTempDir(prefix: string): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  try {
    onTestFinished(() => {
      removeFolder(folder);
    });
  } catch {
    // Not inside a test (module setup, beforeAll): at the end of the file.
    pending.push(folder);
  }
  return folder;
}

/**
 * For each test of the file: a new folder under $TMPDIR, with PERSIST_STATE_DIR set to its
 * `state` subfolder; after the test (after the file's own afterEach hooks) the variable is put
 * back and the folder removed. Returns the current test's folder.
 */
export function folderPerTestWithState(prefix: string): () => string {
  let folder = '';
  let saved: string | undefined;
  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), prefix));
    saved = process.env.PERSIST_STATE_DIR;
    process.env.PERSIST_STATE_DIR = join(folder, 'state');
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.PERSIST_STATE_DIR;
    else process.env.PERSIST_STATE_DIR = saved;
    removeFolder(folder);
  });
  return () => folder;
}
