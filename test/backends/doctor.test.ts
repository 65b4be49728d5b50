import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import doctor from '../../src/commands/doctor.js';
import type { CommandIO } from '../../src/commands/types.js';
import { mountModule } from '../../src/resources/mount/index.js';
import { RealHost } from '../../src/host/real.js';
import type { ResolvedEnvironment } from '../../src/spec/types.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { testBucket } from './fixtures.js';
import { applyPlanned, observing } from '../helpers/resources.js';

function io(env: Record<string, string | undefined>, cwd: string) {
  const lines: string[] = [];
  const value: CommandIO = {
    out: (text) => lines.push(text),
    err: (text) => lines.push(text),
    isTTY: false,
    color: false,
    interactive: false,
    env,
    cwd,
    debug: false,
  };
  return { io: value, lines };
}

describe('persist doctor', () => {
  let root: string;
  let server: S3TestServer;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'persist-doctor-'));
    server = await startS3Server(['doc-bucket']);
  });
  afterAll(async () => {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('passes for an s3fs bucket whose endpoint answers, without printing the keys', async () => {
    const spec = join(root, 'persist.yaml');
    await writeFile(
      spec,
      [
        'version: 1',
        'buckets:',
        '  data:',
        '    name: doc-bucket',
        `    endpoint: ${server.endpoint}`,
        '    region: us-east-1',
        '    provider: other',
        '    credentials:',
        '      accessKeyId: ${env:DOC_KEY}',
        '      secretAccessKey: ${env:DOC_SECRET}',
        '    mount:',
        '      backend: s3fs',
        `      path: ${join(root, 'mnt')}`,
        '',
      ].join('\n'),
    );
    const { io: commandIO, lines } = io({ PATH: process.env.PATH, DOC_KEY: 'S3RVER', DOC_SECRET: 'very-secret-value' }, root);
    const code = await doctor({ file: spec }, commandIO);
    const text = lines.join('\n');
    expect(text).not.toContain('very-secret-value');
    expect(text).toMatch(/ok {3}credentials for data: access key id and secret are set \(values not shown\)/);
    expect(text).toMatch(new RegExp(`ok {3}endpoint for data: ${server.endpoint.replace(/\./g, '\\.')} answered HTTP \\d+`));
    expect(text).toMatch(/mount path for data: nothing mounted at .*mnt; the mount point will be created/);
    expect(text).toContain('ok   s3fs binary: found');
    expect(code).toBe(0);
  });

  it('fails, with a fix, when the endpoint does not answer and credentials are empty', async () => {
    const spec = join(root, 'broken.yaml');
    await writeFile(
      spec,
      [
        'version: 1',
        'buckets:',
        '  data:',
        '    name: doc-bucket',
        '    endpoint: http://127.0.0.1:9',
        '    region: us-east-1',
        '    credentials:',
        '      accessKeyId: ${env:DOC_KEY:-}',
        '      secretAccessKey: ${env:DOC_SECRET:-}',
        '    mount:',
        '      backend: rclone',
        `      path: ${join(root, 'mnt2')}`,
        '',
      ].join('\n'),
    );
    const { io: commandIO, lines } = io({ PATH: process.env.PATH }, root);
    const code = await doctor({ file: spec, json: true }, commandIO);
    const report = JSON.parse(lines.join('\n')) as { ok: boolean; checks: { name: string; ok: boolean; fix?: string }[] };
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    const byName = Object.fromEntries(report.checks.map((check) => [check.name, check]));
    expect(byName['endpoint for data']).toMatchObject({ ok: false });
    expect(byName['endpoint for data']?.fix).toContain('endpoint URL');
    expect(byName['credentials for data']).toMatchObject({ ok: false });
  });

  it('fails on a spec that cannot be loaded', async () => {
    const { io: commandIO, lines } = io({ PATH: process.env.PATH }, root);
    expect(await doctor({ file: join(root, 'missing.yaml') }, commandIO)).toBe(1);
    expect(lines[0]).toMatch(/^FAIL spec: .*missing\.yaml/);
  });
});

describe('local backend apply', () => {
  it('creates the missing directory, then has nothing to do', async () => {
    const root = await mkdtemp(join(tmpdir(), 'persist-local-'));
    try {
      const host = new RealHost();
      const bucket = { ...testBucket('local', 'other'), mount: { backend: 'local' as const, path: join(root, 'a', 'b'), options: {} } };
      const env: ResolvedEnvironment = { specFile: join(root, 'persist.yaml'), specHash: '0', environment: 'test', workspace: root, buckets: { [bucket.key]: bucket }, links: {}, bundles: {}, syncs: {}, files: {} };
      const ctx = { host, env, options: { allowShrink: false }, report: () => undefined, signal: new AbortController().signal };
      const observe = async () => (await mountModule.observe(bucket, observing({ host, env, mountReady: {} }))).state;
      const planned = mountModule.diff(bucket, await observe(), { allowShrink: false });
      expect(planned?.action).toBe('mount');
      expect((await applyPlanned({ ...planned!, dependsOn: [] }, ctx)).summary).toBe(`created ${join(root, 'a', 'b')}`);
      expect((await host.lstat(join(root, 'a', 'b')))?.type).toBe('dir');
      expect(mountModule.diff(bucket, await observe(), { allowShrink: false })).toBeNull();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
