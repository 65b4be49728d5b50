// validate, schema and init, called in-process with a real CommandIO over temporary folders.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import init from '../../src/commands/init.js';
import printSchema from '../../src/commands/schema.js';
import type { CommandIO } from '../../src/commands/types.js';
import validate from '../../src/commands/validate.js';
import { PersistError } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { tempDir } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');

function captureIO(cwd: string, env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  // Like the CLI's, out and err write text as given (commands end their lines).
  const io: CommandIO = { out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false, color: false, interactive: false, env, cwd, debug: false };
  return { io, out, err };
}

describe('persist validate', () => {
  it('accepts the moltbot spec, listing its environments', async () => {
    const { io, out } = captureIO(ROOT, { CF_ACCOUNT_ID: 'a', R2_ACCESS_KEY_ID: 'b', R2_SECRET_ACCESS_KEY: 'c' });
    expect(await validate({ file: 'specs/moltbot.yaml' }, io)).toBe(0);
    expect(out).toEqual(['✓ specs/moltbot.yaml is valid (environments: development, production, legacy)\n']);
  });

  it('prints each problem as FILE:LINE:COL: path: message and exits 1', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'persist.yaml'), 'version: 1\nbuckets:\n  data:\n    name: x-data\n    mount: {backend: nfs, path: ./b}\n');
    const { io, err, out } = captureIO(dir);
    expect(await validate({}, io)).toBe(1);
    expect(out).toEqual([]);
    expect(err[0]).toBe('persist.yaml:5:22: buckets.data.mount.backend: "nfs" is not one of: s3fs, rclone, goofys, local\n');
    expect(err.at(-1)).toBe('1 problem in persist.yaml\n');
  });

  it('prints one JSON document with --json', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'custom.yaml'), 'version: 1\nbuckets: {}\n');
    const { io, out } = captureIO(dir, { PERSIST_SPEC: 'custom.yaml' });
    expect(await validate({ json: true }, io)).toBe(1);
    expect(JSON.parse(out.join('\n'))).toEqual({
      valid: false,
      environments: ['default'],
      errors: [{ file: 'custom.yaml', line: 2, column: 10, path: 'buckets', message: 'declare at least one bucket' }],
    });
    const ok = captureIO(ROOT);
    expect(await validate({ file: 'examples/quickstart.yaml', json: true }, ok.io)).toBe(0);
    expect(JSON.parse(ok.out.join('\n'))).toEqual({ valid: true, environments: ['default'], errors: [] });
  });

  it('validates one environment with --env', async () => {
    const { io, out } = captureIO(ROOT, { CF_ACCOUNT_ID: 'a', R2_ACCESS_KEY_ID: 'b', R2_SECRET_ACCESS_KEY: 'c' });
    expect(await validate({ file: 'specs/moltbot.yaml', env: 'production' }, io)).toBe(0);
    expect(out).toEqual(['✓ specs/moltbot.yaml is valid (environments: production)\n']);
  });
});

describe('persist schema', () => {
  it('prints the JSON Schema from schemas/', async () => {
    const { io, out } = captureIO(ROOT);
    expect(await printSchema({}, io)).toBe(0);
    expect(JSON.parse(out.join('\n'))).toEqual(JSON.parse(readFileSync(join(ROOT, 'schemas/persist.schema.json'), 'utf8')));
  });
});

describe('persist init', () => {
  it('writes a starter that validates and resolves on the local backend', async () => {
    const dir = tempDir();
    const { io, out } = captureIO(dir);
    expect(await init({}, io)).toBe(0);
    expect(out[0]).toContain('Wrote persist.yaml');
    expect((await validateSpec({ file: 'persist.yaml', cwd: dir, processEnv: {} })).problems).toEqual([]);
    const env = await loadEnvironment({ file: 'persist.yaml', cwd: dir, processEnv: {} });
    expect(env.buckets.data?.mount).toEqual({ backend: 'local', path: join(dir, 'bucket'), options: {} });
    expect(env.links.memory?.path).toBe(join(dir, 'workspace', 'memory'));
  });

  it('refuses to overwrite an existing file without --force', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'mine.yaml'), 'keep me\n');
    const { io } = captureIO(dir);
    const error = await init({ file: 'mine.yaml' }, io).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PersistError);
    expect((error as Error).message).toBe('mine.yaml already exists; use --force to overwrite it');
    expect(readFileSync(join(dir, 'mine.yaml'), 'utf8')).toBe('keep me\n');
    expect(await init({ file: 'mine.yaml', force: true }, io)).toBe(0);
    expect(readFileSync(join(dir, 'mine.yaml'), 'utf8')).toContain('backend: local');
    expect(existsSync(join(dir, 'persist.yaml'))).toBe(false);
  });
});

describe('examples/quickstart.yaml', () => {
  it('validates and resolves inside examples/quickstart', async () => {
    const file = join(ROOT, 'examples/quickstart.yaml');
    expect((await validateSpec({ file, processEnv: {} })).problems).toEqual([]);
    const env = await loadEnvironment({ file, processEnv: { ENVIRONMENT: 'production' } });
    const base = join(ROOT, 'examples', 'quickstart');
    expect(env.environment).toBe('default');
    expect(env.workspace).toBe(join(base, 'workspace'));
    expect(env.buckets.data).toMatchObject({ name: 'quickstart', mount: { backend: 'local', path: join(base, 'bucket') } });
    expect(Object.keys(env.links)).toEqual(['memory', 'notes', 'logs']);
    expect(env.bundles.agent).toMatchObject({ repo: join(base, 'repo'), file: join(base, 'bucket', 'bundles', 'repo.bundle'), keep: 2 });
    expect(env.syncs.state).toMatchObject({ from: join(base, 'state'), to: join(base, 'bucket', 'state') });
  });
});
