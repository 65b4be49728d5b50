// file.<name> from a bucket reached through its S3 API (no mount), on the strict S3 server: the
// plan says where the file comes from (the bucket: there is no mount), and the restore brings it.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { fileModule } from '../../src/resources/file/index.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedEnvironment, ResolvedFile } from '../../src/spec/types.js';
import { applyPlanned, observing } from '../helpers/resources.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';
import { applyContext, environment } from './sync-helpers.js';

const host = new RealHost();
let server: StrictS3TestServer;
let root: string;

beforeAll(async () => {
  server = await startStrictS3Server(['files']);
  root = await mkdtemp(join(tmpdir(), 'persist-file-api-'));
});

afterAll(async () => {
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

function apiEnvironment(file: ResolvedFile): ResolvedEnvironment {
  const env = { ...environment(join(root, 'no-mount'), { files: { [file.name]: file } }), workspace: root };
  const credentials = { accessKeyId: new Sensitive(S3RVER_ACCESS_KEY), secretAccessKey: new Sensitive(S3RVER_SECRET_KEY) };
  env.buckets.data = { key: 'data', name: 'files', endpoint: server.endpoint, region: 'us-east-1', pathStyle: true, provider: 'other', credentials };
  return env;
}

describe('file restore from a bucket without a mount', () => {
  it('says the content comes from the bucket, and restores it from there', async () => {
    await server.putObject('files', '.credentials.env', Buffer.from('TOKEN=abc\n'));
    const file: ResolvedFile = { name: 'credentials', bucket: 'data', relFrom: '.credentials.env', from: 's3://files/.credentials.env', to: join(root, 'ws', '.credentials.env'), mode: 0o600 };
    const env = apiEnvironment(file);
    const observed = (await fileModule.observe(file, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
    const decided = fileModule.diff(file, observed, { allowShrink: false })!;
    expect(decided.action).toBe('restore');
    expect(decided.changes[0]).toEqual({ field: 'content', before: null, after: 'from the bucket' });
    await applyPlanned({ ...decided, dependsOn: [] }, applyContext(host, env));
    expect(await readFile(file.to, 'utf8')).toBe('TOKEN=abc\n');

    // A local copy that differs: replaced from the bucket too.
    await host.writeFileAtomic(file.to, 'TOKEN=old\n', { mode: 0o600 });
    const again = (await fileModule.observe(file, observing({ host: readOnlyHost(host), env, mountReady: { data: true } }))).state;
    expect(fileModule.diff(file, again, { allowShrink: false })!.changes[0]).toEqual({ field: 'content', before: 'differs', after: 'from the bucket' });
  }, 30_000);
});
