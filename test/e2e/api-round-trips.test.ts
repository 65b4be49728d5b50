// Round trips to a remote store: with a server that makes every request wait, the plan of a
// converged sync reads its manifest root and its recorded folder modes at once (one round trip),
// not one after the other. Through the CLI, on the strict loopback S3 server.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { apiBucketYaml, Machine } from './flow-helpers.js';

const LATENCY_MS = 150;

describe('a sync over the S3 API, with a round trip before every request', () => {
  const rig = e2eRig(() => startStrictS3Server([], { latencyMs: LATENCY_MS }));

  it('a plan of a converged sync reads the manifest root and the folder modes in one round trip', { timeout: 60_000 }, async () => {
    const bucket = 'round-trips';
    await rig.server.createBucket(bucket);
    const machine = new Machine(await rig.sandbox.tempDir('persist-round-trips-'));
    for (let i = 0; i < 20; i++) {
      await mkdir(join(machine.state, `d${i % 4}`), { recursive: true });
      await writeFile(join(machine.state, `d${i % 4}`, `f${i}.txt`), `file ${i}\n`);
    }
    await writeFile(machine.spec, ['version: 1', 'buckets:', '  data:', apiBucketYaml(rig.server, bucket), 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);

    rig.server.resetCounts();
    const plan = await machine.persist(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.output).toBe(0);
    const received = (name: string) => {
      const request = rig.server.requests().find((r) => r.method === 'GET' && r.url.split('?')[0] === `/${bucket}/state/${name}`);
      expect(request, `GET of state/${name}`).toBeDefined();
      return request!.receivedUs! / 1000;
    };
    // One after the other, the second would be sent after the first's answer: LATENCY_MS later at least.
    expect(Math.abs(received('.persist-sync-folders.json') - received('.persist-sync.json'))).toBeLessThan(LATENCY_MS);
  });
});
