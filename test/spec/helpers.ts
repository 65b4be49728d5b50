// Writes specs into fresh temporary folders so that each test reads a real file.
import { writeFileSync } from 'node:fs';
import { autoTempDir } from '../helpers/temp.js';
import { join } from 'node:path';

/** A temporary folder, removed when the test (or, made outside a test, the file) ends. */
export function tempDir(): string {
  return autoTempDir('persist-spec-');
}

/** Writes `text` as persist.yaml in a new temporary folder and returns the file's path. */
export function writeSpec(text: string): string {
  const file = join(tempDir(), 'persist.yaml');
  writeFileSync(file, text);
  return file;
}
