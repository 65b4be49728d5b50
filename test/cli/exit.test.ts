// bin/persist.js leaves as soon as a command is done (process.exit), instead of letting Node tear
// its heap down first, but only once its output is written: a pipe that is full takes the rest
// later, and an exit then would cut the output short.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

describe('the end of a command', () => {
  it('writes an output larger than a pipe holds whole when the reader is slow', async () => {
    const fixture = makeFixture();
    // 1,500 invalid link names: validate --json prints about 370 KB, more than a pipe's 64 KiB.
    const spec = join(fixture.dir, 'many-errors.yaml');
    const links = Array.from({ length: 1500 }, (_, i) => `  _bad${i}: workspace/x${i}\n`).join('');
    writeFileSync(spec, `version: 1\nbuckets:\n  data:\n    name: many-errors\n    mount: { backend: local, path: ./bucket }\nlinks:\n${links}`);
    const result = await fixture.run(['validate', '-f', spec, '--json'], { readAfterMs: 500 });
    expect(result.stdout.length).toBeGreaterThan(256 * 1024);
    const report = JSON.parse(result.stdout) as { valid: boolean; errors: { path: string }[] };
    expect(report.valid).toBe(false);
    expect(report.errors.map((error) => error.path)).toEqual(Array.from({ length: 1500 }, (_, i) => `links._bad${i}`));
    expect(result.code).toBe(1);
  });
});

describe('validate --json of a spec that cannot be read', () => {
  it('still prints one JSON document naming the file (before: nothing on stdout)', async () => {
    const fixture = makeFixture();
    for (const [file, message] of [
      ['missing.yaml', 'spec file missing.yaml does not exist (give one with -f, or set PERSIST_SPEC)'],
      ['.', 'spec file . is a directory, expected a YAML file'],
    ]) {
      const result = await fixture.run(['validate', '-f', file!, '--json']);
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stdout)).toEqual({ valid: false, environments: [], errors: [{ file, message }] });
    }
  });
});
