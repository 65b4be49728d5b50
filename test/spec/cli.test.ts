// The built CLI (bin/persist.js -> dist/persist.cjs) on good and bad specs: exit codes, --json,
// and no stack trace for a user's mistake.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'persist.js');

async function persist(args: string[], cwd: string, env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('persist validate (built CLI)', () => {
  it('exits 0 on a valid spec', async () => {
    const result = await persist(['validate', '-f', 'examples/quickstart.yaml'], ROOT);
    expect(result).toMatchObject({ code: 0, stdout: '✓ examples/quickstart.yaml is valid (environments: default)\n' });
  });

  it('exits 1 on a bad spec, one line per problem, no stack trace', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'persist.yaml'), 'version: 2\nbuckets:\n  data:\n    name: x-data\n    mount: {backend: local, path: ./b}\nlinks:\n  memory: ../out\n');
    const result = await persist(['validate'], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('persist.yaml:1:10: version: unsupported version 2; this persist reads version 1');
    expect(result.stderr).toContain('persist.yaml:7:11: links.memory: "../out" leaves the mount of bucket data');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it('prints the --json document', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'spec.yaml'), 'version: 1\nbuckets:\n  data:\n    name: x-data\n    mount: {backend: local, path: ./b}\nextra: 1\n');
    const result = await persist(['validate', '--json'], dir, { PERSIST_SPEC: 'spec.yaml' });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({
      valid: false,
      environments: ['default'],
      errors: [{ file: 'spec.yaml', line: 6, column: 1, path: 'extra', message: expect.stringContaining('unknown key "extra"') }],
    });
  });

  it('names a missing spec in one line and exits 1', async () => {
    const result = await persist(['validate', '-f', 'nope.yaml'], tempDir());
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nope.yaml does not exist');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });
});

describe('persist schema and init (built CLI)', () => {
  it('prints the schema', async () => {
    const result = await persist(['schema'], tempDir());
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(JSON.parse(readFileSync(join(ROOT, 'schemas/persist.schema.json'), 'utf8')));
  });

  it('writes a starter that validates, and refuses to overwrite it', async () => {
    const dir = tempDir();
    expect((await persist(['init'], dir)).code).toBe(0);
    expect(await persist(['validate', '--json'], dir)).toMatchObject({ code: 0 });
    const again = await persist(['init'], dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('persist: persist.yaml already exists; use --force to overwrite it\n');
  });
});
