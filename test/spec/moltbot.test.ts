// The agent's real spec, resolved for each of its environments.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { Sensitive } from '../../src/spec/sensitive.js';

const SPEC = resolve(import.meta.dirname, '../../specs/moltbot.yaml');
const SECRETS = { CF_ACCOUNT_ID: 'acct123', R2_ACCESS_KEY_ID: 'AKIA-test-id', R2_SECRET_ACCESS_KEY: 'very-secret-value' };

describe('specs/moltbot.yaml', () => {
  it('resolves the legacy environment when nothing selects one', async () => {
    const env = await loadEnvironment({ file: SPEC, processEnv: { ...SECRETS } });
    expect(env.environment).toBe('legacy');
    expect(env.buckets.data?.name).toBe('moltbot-data');
    expect(env.buckets.data?.mount).toEqual({ backend: 's3fs', path: '/data/moltbot', options: { statCacheExpire: 60 } });
    expect(env.buckets.data?.endpoint).toBe('https://acct123.r2.cloudflarestorage.com');
    expect(env.buckets.data?.region).toBe('auto');
    expect(env.buckets.data?.provider).toBe('r2');
    expect(env.buckets.data?.pathStyle).toBe(true);
    expect(env.workspace).toBe('/root/clawd');
    expect(env.specFile).toBe(SPEC);
    expect(env.specHash).toBe(createHash('sha256').update(readFileSync(SPEC)).digest('hex'));
  });

  it('resolves links, the bundle, the sync and the file inside the legacy mount', async () => {
    const env = await loadEnvironment({ file: SPEC, processEnv: { ...SECRETS } });
    expect(Object.keys(env.links)).toEqual(['memory', 'config', 'logs', 'skills']);
    expect(env.links.memory).toEqual({
      name: 'memory',
      bucket: 'data',
      path: '/root/clawd/memory',
      relTarget: 'workspace/memory',
      target: '/data/moltbot/workspace/memory',
    });
    expect(env.bundles.clawd).toEqual({
      name: 'clawd',
      bucket: 'data',
      repo: '/root/clawd',
      relFile: 'workspace/clawd-backup.bundle',
      file: '/data/moltbot/workspace/clawd-backup.bundle',
      keep: 2,
    });
    expect(env.syncs.clawdbot).toEqual({
      name: 'clawdbot',
      bucket: 'data',
      from: '/root/.clawdbot',
      relTo: 'clawdbot',
      to: '/data/moltbot/clawdbot',
      delete: true,
      exclude: ['*.lock', '*.tmp'],
      maxDeleteRatio: 0.5,
      keep: 10,
    });
    expect(env.files.credentials).toEqual({
      name: 'credentials',
      bucket: 'data',
      relFrom: '.credentials.env',
      from: '/data/moltbot/.credentials.env',
      to: '/root/clawd/.credentials.env',
      mode: 0o600,
    });
  });

  for (const name of ['development', 'production']) {
    it(`resolves ${name} from --env`, async () => {
      const env = await loadEnvironment({ file: SPEC, environment: name, processEnv: { ...SECRETS } });
      expect(env.environment).toBe(name);
      expect(env.buckets.data?.name).toBe(`moltbot-data-${name}`);
      expect(env.buckets.data?.mount?.path).toBe(`/data/moltbot-${name}`);
      expect(env.links.logs?.target).toBe(`/data/moltbot-${name}/workspace/logs`);
      expect(env.buckets.data?.mount).toEqual({ backend: 's3fs', path: `/data/moltbot-${name}`, options: { statCacheExpire: 60 } });
    });

    it(`resolves ${name} from $ENVIRONMENT`, async () => {
      const env = await loadEnvironment({ file: SPEC, processEnv: { ...SECRETS, ENVIRONMENT: name } });
      expect(env.buckets.data?.name).toBe(`moltbot-data-${name}`);
      expect(env.buckets.data?.mount?.path).toBe(`/data/moltbot-${name}`);
    });
  }

  it('prefers --env over $ENVIRONMENT', async () => {
    const env = await loadEnvironment({ file: SPEC, environment: 'production', processEnv: { ...SECRETS, ENVIRONMENT: 'development' } });
    expect(env.environment).toBe('production');
  });

  it('wraps credentials in Sensitive, which never prints its value', async () => {
    const env = await loadEnvironment({ file: SPEC, processEnv: { ...SECRETS } });
    const credentials = env.buckets.data?.credentials;
    expect(credentials?.accessKeyId).toBeInstanceOf(Sensitive);
    expect(credentials?.secretAccessKey.reveal()).toBe('very-secret-value');
    expect(credentials?.accessKeyId.reveal()).toBe('AKIA-test-id');
    const printed = [JSON.stringify(env), String(credentials?.secretAccessKey), `${credentials?.accessKeyId}`, inspect(env, { depth: 10 })];
    for (const text of printed) {
      expect(text).toContain('(sensitive)');
      expect(text).not.toContain('very-secret-value');
      expect(text).not.toContain('AKIA-test-id');
    }
  });

  it('validates every environment, and names each missing variable with the key that uses it', async () => {
    expect(await validateSpec({ file: SPEC, processEnv: { ...SECRETS } })).toEqual({ problems: [], environments: ['development', 'production', 'legacy'] });
    const { problems } = await validateSpec({ file: SPEC, processEnv: { CF_ACCOUNT_ID: 'acct123' } });
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['buckets.data.credentials.accessKeyId', 'environment variable R2_ACCESS_KEY_ID is not set'],
      ['buckets.data.credentials.secretAccessKey', 'environment variable R2_SECRET_ACCESS_KEY is not set'],
    ]);
  });

  it('refuses to load without the credentials, reporting both at once', async () => {
    const error = await loadEnvironment({ file: SPEC, processEnv: { CF_ACCOUNT_ID: 'x' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).problems).toHaveLength(2);
    expect((error as SpecError).message).toMatch(/moltbot\.yaml:26:20: buckets\.data\.credentials\.accessKeyId: environment variable R2_ACCESS_KEY_ID is not set/);
  });
});
