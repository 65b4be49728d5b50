// A bucket with no `mount:` through the CLI, on the strict loopback S3 server: a first save, a
// no-op apply that sends no write, and a new container (fresh state folder, no local folders)
// that restores everything byte for byte with no FUSE mount and no daemon. Then the same layout
// through an s3fs mount: a mirror pushed through s3fs is restored through the API and back.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';
import { startPersist } from './durable-helpers.js';
import { apiBucketYaml, buildWorkspace, bucketYaml, CREDENTIALS, Machine, manifest, repoSnapshot, sha256, waitFor } from './flow-helpers.js';

/** Bundle of ./ws, syncs of ./state and ./data, a restored file: no links (they need a mount). */
export function apiSpec(bucketLines: string): string {
  return [
    'version: 1',
    'workspace: ./ws',
    'buckets:',
    '  data:',
    bucketLines,
    'bundles:',
    '  ws: { repo: ./ws, file: workspace/ws.bundle, keep: 2 }',
    'syncs:',
    '  state: { from: ./state, to: state, delete: true }',
    '  data: { from: ./data, to: data, delete: true }',
    'files:',
    '  credentials: { from: .credentials.env, to: ./ws/.credentials.env, mode: "0600" }',
    '',
  ].join('\n');
}

async function buildData(machine: Machine): Promise<void> {
  const data = join(machine.root, 'data');
  for (let i = 0; i < 40; i++) {
    await mkdir(join(data, `d${i % 5}`), { recursive: true });
    await writeFile(join(data, `d${i % 5}`, `f${i}.txt`), randomBytes(100 + i * 37));
  }
  await writeFile(join(data, 'big.bin'), randomBytes(20 * 1024 * 1024 + 17)); // multipart up, streamed down
}

async function localTree(machine: Machine): Promise<Record<string, string>> {
  return {
    state: JSON.stringify(await manifest(machine.state)),
    data: JSON.stringify(await manifest(join(machine.root, 'data'))),
    credentials: sha256(await readFile(join(machine.ws, '.credentials.env'))),
    repo: JSON.stringify(repoSnapshot(machine.ws)),
  };
}

function writes(server: StrictS3TestServer): number {
  const { requests } = server.stats();
  return (requests.PUT ?? 0) + (requests.POST ?? 0) + (requests.DELETE ?? 0);
}

async function mountsUnder(root: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((line) => line.includes(root));
}

describe('a bucket without a mount (the S3 API) through the CLI', () => {
  const rig = e2eRig(() => startStrictS3Server());

  /** A machine with one sync (`./state`, holding memory.md) into a new bucket `name`, saved once. */
  async function savedSyncMachine(name: string): Promise<Machine> {
    await rig.server.createBucket(name);
    const m = new Machine(await rig.sandbox.tempDir(`persist-${name}-`));
    await writeFile(m.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', apiBucketYaml(rig.server, name), 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    await mkdir(m.state, { recursive: true });
    await writeFile(join(m.state, 'memory.md'), 'first\n');
    expect((await m.persist(['apply', '--auto-approve'])).code).toBe(0);
    return m;
  }

  it('saves, sends 0 writes on a no-op apply, and a new container restores it all byte for byte', { timeout: 120_000 }, async () => {
    const bucket = 'api-flow';
    await rig.server.createBucket(bucket);
    await rig.server.putObject(bucket, 'agents/one/.credentials.env', CREDENTIALS);
    const a = new Machine(await rig.sandbox.tempDir('persist-api-a-'));
    await buildWorkspace(a);
    await buildData(a);
    await writeFile(a.spec, apiSpec(apiBucketYaml(rig.server, bucket, 'agents/one')));
    const first = await a.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);
    expect(first.output).toMatch(/Apply complete: 4 applied, 0 failed, 0 skipped/);
    const before = await localTree(a);
    expect(before.credentials).toBe(sha256(CREDENTIALS));
    const keys = await rig.server.listObjects(bucket);
    expect(keys).toContain('agents/one/workspace/ws.bundle');
    expect(keys).toContain('agents/one/data/big.bin');
    expect(keys.every((key) => key.startsWith('agents/one/'))).toBe(true);
    expect(keys.some((key) => key.includes('persist-tmp'))).toBe(false);
    expect(sha256((await rig.server.getObject(bucket, 'agents/one/data/big.bin'))!)).toBe(sha256(await readFile(join(a.root, 'data', 'big.bin'))));

    rig.server.resetCounts();
    const writesBefore = writes(rig.server);
    const again = await a.persist(['apply', '--auto-approve']);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain('No changes');
    expect(writes(rig.server) - writesBefore).toBe(0);

    // A stops: its shutdown has nothing left to save and releases the lease.
    const down = await a.persist(['shutdown']);
    expect(down.code, down.output).toBe(0);
    expect(down.stdout).toContain(`released the lease s3://${bucket}/agents/one/.persist-lease.json`);

    // A new container: the spec only; no workspace, no sync folders, a fresh persist state folder.
    const b = new Machine(await rig.sandbox.tempDir('persist-api-b-'));
    await cp(a.spec, b.spec);
    const restored = await b.persist(['apply', '--auto-approve']);
    expect(restored.code, restored.output).toBe(0);
    expect(await localTree(b)).toEqual(before);
    expect(await mountsUnder(b.root)).toEqual([]);
    // No backend was started: no runtime folder for a mount in the state folder.
    expect(await readdir(b.stateDir).catch(() => [])).not.toContain('mounts');
    const plan = await b.persist(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.output).toBe(0);
  });

  it('redeploy: B waits for the lease that A holds and fails naming A; once A releases, B restores A\'s last push', { timeout: 120_000 }, async () => {
    const bucket = 'api-lease';
    await rig.server.createBucket(bucket);
    await rig.server.putObject(bucket, 'x/.credentials.env', CREDENTIALS);
    const a = new Machine(await rig.sandbox.tempDir('persist-lease-a-'));
    await buildWorkspace(a);
    await buildData(a);
    await writeFile(a.spec, apiSpec(apiBucketYaml(rig.server, bucket, 'x')));
    const first = await a.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);
    const machineA = (await readFile(join(a.stateDir, 'machine-id'), 'utf8')).trim();
    expect(machineA).toMatch(/^[0-9a-f]{32}$/);

    const b = new Machine(await rig.sandbox.tempDir('persist-lease-b-'));
    await cp(a.spec, b.spec);
    const started = Date.now();
    const waited = await b.persist(['apply', '--auto-approve', '--lock-timeout', '2s']);
    expect(waited.code).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(waited.output).toContain(`held by machine ${machineA}`);
    const status = await b.persist(['status']);
    expect(status.code, status.output).toBe(0);
    expect(status.output).toMatch(new RegExp(`lease\\.data .*holder=${machineA}`));
    // B wrote nothing locally: no restore before the lease.
    expect(await readdir(b.root)).not.toContain('state');

    // A's last change, then its shutdown: push and release.
    await writeFile(join(a.state, 'last.txt'), 'the final push\n');
    const last = await a.persist(['shutdown']);
    expect(last.code, last.output).toBe(0);
    expect(last.stdout).toMatch(/✔ sync\.state: push: /);

    const proceeds = await b.persist(['apply', '--auto-approve', '--lock-timeout', '2s']);
    expect(proceeds.code, proceeds.output).toBe(0);
    expect(await readFile(join(b.state, 'last.txt'), 'utf8')).toBe('the final push\n');
    expect(await manifest(b.state)).toEqual(await manifest(a.state));
    // Now B holds it: A's next push waits and fails naming B.
    const machineB = (await readFile(join(b.stateDir, 'machine-id'), 'utf8')).trim();
    await writeFile(join(a.state, 'late.txt'), 'too late\n');
    const late = await a.persist(['apply', '--auto-approve']);
    expect(late.code).toBe(1);
    expect(late.output).toContain(`held by machine ${machineB}`);
  });

  it('prefixes: two environments in one bucket never see each other\'s keys; nested prefixes are refused', { timeout: 120_000 }, async () => {
    const bucket = 'api-shared';
    await rig.server.createBucket(bucket);
    const m = new Machine(await rig.sandbox.tempDir('persist-prefix-'));
    const spec = (prefixes: [string, string]) =>
      [
        'version: 1',
        'buckets:',
        '  data:',
        apiBucketYaml(rig.server, bucket),
        'syncs:',
        '  state: { from: "./state-${environment}", to: state, delete: true }',
        'environments:',
        ...(['dev', 'prod'] as const).flatMap((name, i) => [`  ${name}:`, '    buckets:', '      data:', `        prefix: "${prefixes[i]}"`]),
        '',
      ].join('\n');
    await writeFile(m.spec, spec(['agents/dev', 'agents/prod']));
    for (const name of ['dev', 'prod']) {
      await mkdir(join(m.root, `state-${name}`), { recursive: true });
      await writeFile(join(m.root, `state-${name}`, `${name}.txt`), `only ${name}\n`);
      const applied = await m.persist(['apply', '--auto-approve', '--env', name]);
      expect(applied.code, applied.output).toBe(0);
    }
    const keys = await rig.server.listObjects(bucket);
    expect(keys.filter((k) => k.startsWith('agents/dev/')).some((k) => k.includes('prod'))).toBe(false);
    expect(keys).toContain('agents/dev/state/dev.txt');
    expect(keys).toContain('agents/prod/state/prod.txt');
    expect(keys).not.toContain('agents/dev/state/prod.txt');
    // Each environment's plan sees only its own mirror.
    for (const name of ['dev', 'prod']) {
      const plan = await m.persist(['plan', '--detailed-exitcode', '--env', name]);
      expect(plan.code, plan.output).toBe(0);
    }
    await writeFile(m.spec, spec(['agents', 'agents/prod']));
    const nested = await m.persist(['validate']);
    expect(nested.code).toBe(1);
    expect(nested.output).toMatch(/nested prefixes of bucket "api-shared"/);
    await writeFile(m.spec, spec(['same', 'same']));
    const same = await m.persist(['validate']);
    expect(same.code).toBe(1);
    expect(same.output).toMatch(/each environment needs its own bucket or prefix/);
  });

  it('refuses a link into a bucket without a mount, naming the way out', { timeout: 60_000 }, async () => {
    const m = new Machine(await rig.sandbox.tempDir('persist-api-link-'));
    await writeFile(m.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', apiBucketYaml(rig.server, 'api-link'), 'links:', '  memory: workspace/memory', ''].join('\n'));
    const result = await m.persist(['validate']);
    expect(result.code).toBe(1);
    expect(result.output).toContain('links need a mounted bucket; add mount: or use a sync');
    expect(result.output).not.toContain('S3RVER');
  });

  it('doctor checks the endpoint, the bucket and the keys with one signed list; bad keys fail without showing them', { timeout: 60_000 }, async () => {
    await rig.server.createBucket('api-doctor');
    const m = new Machine(await rig.sandbox.tempDir('persist-api-doctor-'));
    await writeFile(m.spec, apiSpec(apiBucketYaml(rig.server, 'api-doctor')));
    const good = await m.persist(['doctor']);
    expect(good.output).toMatch(/ok\s+S3 API for data: a signed list of s3:\/\/api-doctor succeeded/);
    expect(good.output).not.toMatch(/FAIL\s+S3 API/);
    const bad = await m.persist(['doctor'], { accessKeyId: 'S3RVER', secretAccessKey: 'wrong-secret-value-123' });
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/FAIL S3 API for data: listing s3:\/\/api-doctor failed/);
    expect(bad.output).not.toContain('wrong-secret-value-123');
  });

  it('shutdown saves through a passing store outage: what the outage stopped is tried again until its timeout', { timeout: 120_000 }, async () => {
    const m = await savedSyncMachine('api-blip');
    await writeFile(join(m.state, 'memory.md'), 'the last words before the container stops\n');
    // Every request answered 503 SlowDown for a while: more than the client's own retries of one request.
    rig.server.injectFailures({ count: 14, status: 503 });
    const stopped = await m.persist(['shutdown', '--timeout', '60s']);
    expect(stopped.output).toMatch(/stopped by the store \(sync\.state\): trying again in 2 s/);
    expect(stopped.code, stopped.output).toBe(0);
    expect(rig.server.stats().injected).toBe(14);
    const b = new Machine(await rig.sandbox.tempDir('persist-api-blip-b-'));
    await writeFile(b.spec, await readFile(m.spec, 'utf8'));
    expect((await b.persist(['apply', '--auto-approve'])).code).toBe(0);
    expect(await readFile(join(b.state, 'memory.md'), 'utf8')).toBe('the last words before the container stops\n');
  });

  it('shutdown whose lease cannot be deleted (the store gone after the last save) says the lease is kept, not an internal error, and exits 0', { timeout: 120_000 }, async () => {
    const m = await savedSyncMachine('api-release');
    await writeFile(join(m.state, 'memory.md'), 'the last words\n');
    // Every DELETE of the lease fails: more than the client's own retries.
    rig.server.injectFailures({ method: 'DELETE', match: (url) => url.split('?')[0]!.endsWith('/.persist-lease.json'), count: 20, status: 503 });
    const stopped = await m.persist(['shutdown', '--timeout', '30s']);
    expect(stopped.code, stopped.output).toBe(0);
    expect(stopped.stdout).toMatch(/✔ sync\.state: push: copied 1 file/);
    expect(stopped.stdout).toContain('• lease: not released: s3://api-release/.persist-lease.json: ');
    expect(stopped.stdout).toContain('everything is saved, and the lease expires after its time to live (the next container waits for that)');
    expect(stopped.stdout).toContain('everything is in the store');
    expect(stopped.output).not.toMatch(/internal error/);
    expect(await rig.server.getObject('api-release', '.persist-lease.json')).not.toBeNull();
  });

  it('watch through a store outage says the store did not answer (not a conflict that needs a person), then saves', { timeout: 120_000 }, async () => {
    const m = await savedSyncMachine('api-outage');
    const watch = startPersist(m, ['watch', '--interval', '1s', '--auto-approve']);
    try {
      await waitFor('the first round', () => / round 0\] no changes$/m.test(watch.output()), 30_000);
      rig.server.injectFailures({ count: 40, status: 503 });
      await waitFor('a round in the outage', () => / round \d+\] not looked into this round \(the store did not answer; tried again next round\): sync\.state: cannot be looked into: /m.test(watch.output()), 60_000);
      expect(watch.output()).not.toContain('needs a person');
      await writeFile(join(m.state, 'memory.md'), 'after the outage\n');
      await waitFor('the push after the outage', () => / round \d+\] applied 1, failed 0, skipped 0: sync\.state push$/m.test(watch.output()), 60_000);
    } finally {
      watch.kill('SIGTERM');
      await watch.done;
    }
    expect((await rig.server.getObject('api-outage', 'state/memory.md'))?.toString()).toBe('after the outage\n');
  });

  it("a bucket whose store fails stops only its own resources: named with what to check, the other bucket saved, no internal error", { timeout: 120_000 }, async () => {
    await rig.server.createBucket('api-iso-good');
    const m = new Machine(await rig.sandbox.tempDir('persist-api-iso-'));
    const bucket = (key: string, name: string) => [`  ${key}:`, apiBucketYaml(rig.server, name)];
    await writeFile(m.spec, ['version: 1', 'workspace: ./ws', 'buckets:', ...bucket('good', 'api-iso-good'), ...bucket('gone', 'api-iso-no-such-bucket'), 'syncs:', '  a: { from: ./a, to: a, bucket: good }', '  b: { from: ./b, to: b, bucket: gone }', ''].join('\n'));
    for (const side of ['a', 'b']) {
      await mkdir(join(m.root, side), { recursive: true });
      await writeFile(join(m.root, side, 'note.md'), `${side}\n`);
    }
    const plan = await m.persist(['plan']);
    expect(plan.code).toBe(1);
    expect(plan.output).toMatch(/sync\.a\s+push/);
    expect(plan.output).toMatch(/sync\.b[\s\S]*cannot be looked into: s3:\/\/api-iso-no-such-bucket \(buckets\.gone\): .*NoSuchBucket/);
    expect(plan.output).toContain('Check buckets.gone.name and buckets.gone.endpoint');
    const applied = await m.persist(['apply', '--auto-approve']);
    expect(applied.code).toBe(1);
    expect(applied.output).toMatch(/sync\.a\s+push: copied 1 file/);
    expect(applied.output).toMatch(/Apply complete: 1 applied, 1 failed, 0 skipped/);
    const status = await m.persist(['status']);
    expect(status.output).toMatch(/sync\.a/);
    for (const run of [plan, applied, status]) expect(run.output).not.toMatch(/internal error|S3RVER/);
  });
});

describeE2E('a mirror pushed through s3fs, restored through the API and back', ['s3fs'], () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('reads the same mirror, manifest and layout both ways', { timeout: 180_000 }, async () => {
    const bucket = 'api-s3fs';
    await rig.server.createBucket(bucket);
    const syncSpec = (bucketLines: string) => ['version: 1', 'buckets:', '  data:', bucketLines, 'syncs:', '  state: { from: ./state, to: state, delete: true }', ''].join('\n');
    // Through the mount itself (s3fs would carry syncs over the API by default).
    const mountedSpec = syncSpec(`${bucketYaml(rig.server, 's3fs', bucket, './mnt', '    ')}\n      options: { transfers: mount }`);
    const apiOnly = syncSpec(apiBucketYaml(rig.server, bucket));

    const viaMount = new Machine(await rig.sandbox.tempDir('persist-api-s3fs-a-'));
    await buildWorkspace(viaMount);
    await writeFile(viaMount.spec, mountedSpec);
    const pushed = await viaMount.persist(['apply', '--auto-approve']);
    expect(pushed.code, pushed.output).toBe(0);
    // Each container stops with its shutdown, which releases the lease the next one needs.
    expect((await viaMount.persist(['shutdown'])).code).toBe(0);

    const viaApi = new Machine(await rig.sandbox.tempDir('persist-api-s3fs-b-'));
    await writeFile(viaApi.spec, apiOnly);
    const restored = await viaApi.persist(['apply', '--auto-approve']);
    expect(restored.code, restored.output).toBe(0);
    expect(await manifest(viaApi.state)).toEqual(await manifest(viaMount.state));

    // Changed through the API, read back through a new s3fs mount.
    await writeFile(join(viaApi.state, 'devices', 'pairing.json'), '{"device":"laptop"}\n');
    await writeFile(join(viaApi.state, 'new.txt'), 'made through the API\n');
    const apiPush = await viaApi.persist(['apply', '--auto-approve']);
    expect(apiPush.code, apiPush.output).toBe(0);
    expect((await viaApi.persist(['shutdown'])).code).toBe(0);

    const back = new Machine(await rig.sandbox.tempDir('persist-api-s3fs-c-'));
    await writeFile(back.spec, mountedSpec);
    const again = await back.persist(['apply', '--auto-approve']);
    expect(again.code, again.output).toBe(0);
    expect(await manifest(back.state)).toEqual(await manifest(viaApi.state));
    expect((await back.persist(['shutdown'])).code).toBe(0);
  });
});
