// The spec parse cache: keyed by the file's exact bytes, used when present, ignored when damaged,
// and never a reason for a message to lose its line and column.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/errors.js';
import { loadEnvironment, rememberSpec } from '../../src/spec/index.js';
import { tempDir, writeSpec } from './helpers.js';

const SPEC = ['version: 1', 'buckets:', '  data:', '    name: cached', '    mount: { backend: local, path: ./bucket }', 'links:', '  memory: workspace/memory', ''].join('\n');

function setup(text = SPEC) {
  const file = writeSpec(text);
  const cacheDir = join(dirname(file), 'cache');
  return { file, cacheDir, input: { file, processEnv: {}, cacheDir } };
}

function entryOf(cacheDir: string): string {
  const [name] = readdirSync(cacheDir);
  return join(cacheDir, name!);
}

describe('spec parse cache', () => {
  it('is written only by rememberSpec, with mode 0600, and used for the same bytes', async () => {
    const { file, cacheDir, input } = setup();
    const fresh = await loadEnvironment(input);
    expect(existsSync(cacheDir)).toBe(false); // loading never writes
    await rememberSpec(input, fresh.specHash);
    const entry = entryOf(cacheDir);
    expect(statSync(entry).mode & 0o777).toBe(0o600);
    // Prove the cache is read: change the cached data (not the file) and see it come back.
    const cached = JSON.parse(readFileSync(entry, 'utf8'));
    cached.data.links = { notes: 'workspace/notes' };
    writeFileSync(entry, JSON.stringify(cached));
    expect(Object.keys((await loadEnvironment(input)).links)).toEqual(['notes']);
    // Other bytes, other key: the file is parsed again.
    writeFileSync(file, `${SPEC}# a comment changes the bytes\n`);
    expect(Object.keys((await loadEnvironment(input)).links)).toEqual(['memory']);
  });

  it('ignores a damaged entry', async () => {
    const { cacheDir, input } = setup();
    await rememberSpec(input, (await loadEnvironment(input)).specHash);
    writeFileSync(entryOf(cacheDir), '{"format": 1, "hash": "trunc');
    expect(Object.keys((await loadEnvironment(input)).links)).toEqual(['memory']);
  });

  it('keeps line and column in messages about a cached spec', async () => {
    const text = SPEC.replace('name: cached', 'name: ${env:BUCKET_NAME}');
    const { cacheDir, input } = setup(text);
    const env = await loadEnvironment({ ...input, processEnv: { BUCKET_NAME: 'cached' } });
    await rememberSpec(input, env.specHash);
    expect(readdirSync(cacheDir)).toHaveLength(1);
    try {
      await loadEnvironment(input);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(SpecError);
      expect((error as SpecError).problems[0]).toMatchObject({ line: 4, column: 11, path: 'buckets.data.name' });
    }
  });

  it('caches nothing for a spec with a YAML problem or one that changed since', async () => {
    const { file, cacheDir, input } = setup();
    const env = await loadEnvironment(input);
    writeFileSync(file, `${SPEC}links:\n  other: x\n`); // duplicate key, and other bytes
    await rememberSpec(input, env.specHash);
    expect(existsSync(cacheDir)).toBe(false);
  });
});

describe('the CLI and the cache', () => {
  const cli = resolve(import.meta.dirname, '../../bin/persist.js');
  it('plan and a no-op apply write no cache; an apply with work does', () => {
    const dir = tempDir();
    const spec = join(dir, 'persist.yaml');
    writeFileSync(spec, SPEC);
    const env = { ...process.env, PERSIST_STATE_DIR: join(dir, 'state'), NO_COLOR: '1' };
    const run = (...args: string[]) => execFileSync(process.execPath, [cli, ...args, '-f', spec], { env, encoding: 'utf8' });
    run('plan');
    expect(existsSync(join(dir, 'state'))).toBe(false);
    run('apply', '--auto-approve');
    expect(readdirSync(join(dir, 'state', 'spec-cache'))).toHaveLength(1);
    expect(run('plan')).toContain('No changes');
  });
});
