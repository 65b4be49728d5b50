// An s3fs bucket with credentials: its sync goes through the bucket's S3 API by default (one PUT
// per file, no temporary names, none of s3fs's lookups), while its link goes through the mount;
// the mirror is then read back through that mount byte for byte. With `transfers: mount` the same
// sync goes through s3fs. (src/store/index.ts, docs/backends.md.)
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { bucketYaml, Machine, manifest, unmountLikeShutdown } from './flow-helpers.js';

function spec(server: S3TestServer, bucket: string, options = ''): string {
  return [
    'version: 1',
    'workspace: ./ws',
    'buckets:',
    '  data:',
    `${bucketYaml(server, 's3fs', bucket, './mnt', '    ')}${options ? `\n      options: ${options}` : ''}`,
    'links:',
    '  memory: workspace/memory',
    'syncs:',
    '  state: { from: ./state, to: state, delete: true }',
    '',
  ].join('\n');
}

/** Requests on the mirror's data keys (not its manifest), as `METHOD key`. */
function mirrorRequests(server: S3TestServer, bucket: string): string[] {
  return server
    .requests()
    .map((r) => `${r.method} ${decodeURIComponent(r.url.split('?')[0]!).replace(`/${bucket}/`, '')}`)
    .filter((line) => / state\/notes\//.test(line));
}

async function build(machine: Machine): Promise<void> {
  await mkdir(join(machine.state, 'notes'), { recursive: true });
  for (let i = 0; i < 30; i++) await writeFile(join(machine.state, 'notes', `${i}.md`), `note ${i}\n`);
  await mkdir(join(machine.root, 'ws', 'memory'), { recursive: true });
  await writeFile(join(machine.root, 'ws', 'memory', 'today.md'), 'remembered\n');
}

describeE2E('the store of an s3fs bucket with credentials', ['s3fs'], () => {
  const rig = e2eRig(() => startS3Server());

  it('carries the sync over the S3 API by default, the link over the mount, and both see the same objects', { timeout: 180_000 }, async () => {
    const bucket = 's3fs-api-transfers';
    await rig.server.createBucket(bucket);
    const m = new Machine(await rig.sandbox.tempDir('persist-s3fs-api-'));
    await build(m);
    await writeFile(m.spec, spec(rig.server, bucket));
    rig.server.resetCounts();
    const applied = await m.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);

    // The sync's files: one PUT each (no temporary name, no rename, no lookup of `<key>/`).
    const requests = mirrorRequests(rig.server, bucket);
    expect(requests.filter((line) => line.startsWith('PUT ')).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `PUT state/notes/${i}.md`).sort());
    expect(requests.filter((line) => !line.startsWith('PUT '))).toEqual([]);
    // The link's file went through s3fs (its lookups end in `/` and `_$folder$`).
    const linkRequests = rig.server.requests().map((r) => decodeURIComponent(r.url.split('?')[0]!)).filter((url) => url.includes('workspace/memory/today.md'));
    expect(linkRequests.some((url) => url.endsWith('today.md/') || url.endsWith('_$folder$'))).toBe(true);

    // Through the mount, the mirror the API wrote.
    expect(await readFile(join(m.mnt, 'state', 'notes', '7.md'), 'utf8')).toBe('note 7\n');
    rig.server.resetCounts();
    const plan = await m.persist(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.output).toBe(0);
    expect(rig.server.writeCount()).toBe(0);
    await unmountLikeShutdown(m);

    // `transfers: mount`: the same sync through s3fs (temporary names or s3fs's lookups).
    const viaMount = new Machine(await rig.sandbox.tempDir('persist-s3fs-mount-'));
    await build(viaMount);
    await writeFile(viaMount.spec, spec(rig.server, `${bucket}-2`, '{ transfers: mount }'));
    await rig.server.createBucket(`${bucket}-2`);
    rig.server.resetCounts();
    const mounted = await viaMount.persist(['apply', '--auto-approve']);
    expect(mounted.code, mounted.output).toBe(0);
    const throughS3fs = mirrorRequests(rig.server, `${bucket}-2`);
    expect(throughS3fs.some((line) => line.endsWith('.md/') || line.includes('_$folder$'))).toBe(true);
    expect(await manifest(join(viaMount.mnt, 'state'), ['.persist-sync', '.persist-sync.json'])).toEqual(await manifest(viaMount.state));
    await unmountLikeShutdown(viaMount);
  });
});
