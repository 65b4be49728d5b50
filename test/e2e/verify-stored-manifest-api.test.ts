// `persist verify` reads a sync's manifest shards from the store on a bucket without a mount (the
// S3 API, strict loopback server): a shard overwritten in the bucket is named (exit 1) although
// this machine's copy of it is whole, the next apply writes it again, and a new container then
// reads the manifest. Before, verify --hash said "Verified" and plan "No changes" on the machine
// that pushed, while a new container's plan was a conflict ("not valid JSON").
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { apiBucketYaml, Machine } from './flow-helpers.js';

describeE2E('verify checks the stored manifest on an API bucket', [], () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('a damaged shard: verify --hash names it, apply repairs it, a new container reads it', { timeout: 120_000 }, async () => {
    const bucket = 'verify-shard';
    await rig.server.createBucket(bucket);
    const a = new Machine(await rig.sandbox.tempDir('persist-verify-shard-'));
    await mkdir(a.state, { recursive: true });
    for (let i = 0; i < 3; i++) await writeFile(join(a.state, `f${i}.txt`), `file ${i}\n`);
    await writeFile(a.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', apiBucketYaml(rig.server, bucket, 'agents/one'), 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    const first = await a.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);
    const key = 'agents/one/state/.persist-sync/0-of-1.json';
    const good = (await rig.server.getObject(bucket, key))!;
    await rig.server.putObject(bucket, key, Buffer.from('garbage{'));

    const verified = await a.persist(['verify', '--hash']);
    expect(verified.code, verified.output).toBe(1);
    expect(verified.output).toMatch(/\.persist-sync\/0-of-1\.json: damaged: its content \(8 bytes/);
    const plan = await a.persist(['plan']);
    expect(plan.output).toMatch(/~ sync\.state {2}push \(repair\)/);
    const repaired = await a.persist(['apply', '--auto-approve']);
    expect(repaired.code, repaired.output).toBe(0);
    expect((await rig.server.getObject(bucket, key))!.equals(good)).toBe(true);

    a.newStateDir('b');
    const fresh = await a.persist(['verify', '--hash']);
    expect(fresh.code, fresh.output).toBe(0);
    expect(fresh.output).toMatch(/ok +sync\.state/);
  });
});
