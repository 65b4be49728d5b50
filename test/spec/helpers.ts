// Writes specs into fresh temporary folders so that each test reads a real file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'persist-spec-'));
}

/** Writes `text` as persist.yaml in a new temporary folder and returns the file's path. */
export function writeSpec(text: string): string {
  const file = join(tempDir(), 'persist.yaml');
  writeFileSync(file, text);
  return file;
}
