// The whole product through its CLI on real FUSE mounts (s3fs, rclone) of buckets served by
// s3rver, when things are idle or go wrong: a converged machine is observed without a single
// write, a killed daemon is healed, another environment's bucket at the mount path is replaced
// without touching either bucket, and bad keys or a missing bucket fail fast with nothing moved.
import { lstat, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { mountAt, parseMountinfo } from '../../src/host/mountinfo.js';
import { describeE2E, pidsWithArg, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import {
  bucketSnapshot,
  bucketYaml,
  buildWorkspace,
  convergedMachine,
  FUSE_BACKENDS,
  flowSpec,
  LINK_NAMES,
  Machine,
  rcloneSettled,
  treeOf,
  waitFor,
  type Keys,
} from './flow-helpers.js';

function currentMount(path: string) {
  return readFile('/proc/self/mountinfo', 'utf8').then((text) => mountAt(parseMountinfo(text), path));
}

for (const backend of FUSE_BACKENDS) {
  describeE2E(`persist end to end with ${backend}: idle machines and failures`, [backend], () => {
    const rig = e2eRig(() => startS3Server());

    const writesSeen = () => JSON.stringify(rig.server.requests().filter((r) => !['GET', 'HEAD'].includes(r.method)));

    it('sends zero write requests for apply, plan and status on a converged machine', { timeout: 120_000 }, async () => {
      const { machine } = await convergedMachine(rig.server, rig.sandbox, backend, `idle-${backend}`);
      await rcloneSettled(machine);

      rig.server.resetCounts();
      const apply = await machine.persist(['apply', '--auto-approve']);
      expect(apply.code, apply.output).toBe(0);
      expect(apply.stdout).toContain('No changes');
      expect(apply.stdout).toContain('Apply complete: 0 applied, 0 failed, 0 skipped.');
      expect(rig.server.writeCount(), writesSeen()).toBe(0);
      const readsByApply = rig.server.requests().length;

      rig.server.resetCounts();
      const plan = await machine.persist(['plan', '--detailed-exitcode']);
      expect(plan.code, plan.output).toBe(0);
      expect(plan.stdout).toContain('No changes');
      expect(rig.server.writeCount(), writesSeen()).toBe(0);

      rig.server.resetCounts();
      const status = await machine.persist(['status']);
      expect(status.code, status.output).toBe(0);
      expect(status.stdout).not.toContain('!!');
      expect(status.stdout).toMatch(/ok\s+mount\.data/);
      expect(rig.server.writeCount(), writesSeen()).toBe(0);
      console.log(`no-op apply (${backend}): ${apply.ms} ms, ${readsByApply} read requests; plan ${plan.ms} ms; status ${status.ms} ms`);
    });

    it('plans a remount after the daemon is killed, and apply heals it', { timeout: 120_000 }, async () => {
      const { machine, expected } = await convergedMachine(rig.server, rig.sandbox, backend, `killed-${backend}`);
      await rcloneSettled(machine);
      const pids = pidsWithArg(backend, machine.mnt);
      expect(pids).toHaveLength(1);
      process.kill(pids[0]!, 'SIGKILL');
      await waitFor(`${backend} to exit`, () => pidsWithArg(backend, machine.mnt).length === 0);
      // And a link lost meanwhile: it is made again once the mount is back.
      await unlink(join(machine.ws, 'memory'));

      const plan = await machine.persist(['plan']);
      expect(plan.code, plan.output).toBe(0);
      expect(plan.stdout).toMatch(/1\. ~ mount\.data {2}remount/);
      expect(plan.stdout).toMatch(/\d+\. \+ link\.memory {2}create/);
      const detailed = await machine.persist(['plan', '--detailed-exitcode']);
      expect(detailed.code, detailed.output).toBe(2);

      const apply = await machine.persist(['apply', '--auto-approve']);
      expect(apply.code, apply.output).toBe(0);
      expect(apply.stdout).toMatch(/✔ 1\. ~ mount\.data {2}remount: remounted/);
      expect(apply.stdout).toMatch(/✔ \d+\. \+ link\.memory {2}create: created the link/);
      expect(apply.stdout).toMatch(/Apply complete: 2 applied, 0 failed, \d+ skipped\./);
      expect(await treeOf(machine)).toEqual(expected);
      const after = await machine.persist(['plan', '--detailed-exitcode']);
      expect(after.code, after.output).toBe(0);
    });

    it("replaces production's bucket mounted at development's path without touching either bucket", { timeout: 120_000 }, async () => {
      const root = await rig.sandbox.tempDir(`persist-flow-env-${backend}-`);
      for (const env of ['development', 'production']) {
        await rig.server.createBucket(`app-${env}`);
        await rig.server.putObject(`app-${env}`, 'today.md', Buffer.from(`${env} notes\n`));
        await rig.server.putObject(`app-${env}`, 'data/deep/nested/blob.bin', Buffer.from(`${env} `.repeat(10_000)));
      }
      const before = { development: await bucketSnapshot(rig.server, 'app-development'), production: await bucketSnapshot(rig.server, 'app-production') };
      const spec = new Machine(root);
      await writeFile(spec.spec, ['version: 1', 'buckets:', '  data:', bucketYaml(rig.server, backend, 'app-${environment}', './mnt-${environment}', '    '), 'environments:', '  development: {}', '  production: {}', ''].join('\n'));
      // The mistake: production's bucket mounted where development's belongs (made by persist
      // itself from a second spec, so the mount is exactly what the driver builds).
      const wrong = join(root, 'wrong.yaml');
      await writeFile(wrong, ['version: 1', 'buckets:', '  data:', bucketYaml(rig.server, backend, 'app-production', './mnt-development', '    '), ''].join('\n'));
      const mistake = await spec.persist(['apply', '--auto-approve'], undefined, wrong);
      expect(mistake.code, mistake.output).toBe(0);
      const devPath = join(root, 'mnt-development');
      expect((await currentMount(devPath))?.source).toBe('app-production');

      const plan = await spec.persist(['plan', '--env', 'development', '--detailed-exitcode']);
      expect(plan.code, plan.output).toBe(2);
      expect(plan.stdout).toMatch(/1\. -\/\+ mount\.data {2}replace/);
      expect(plan.stdout).toContain('app-production');

      const apply = await spec.persist(['apply', '--env', 'development', '--auto-approve']);
      expect(apply.code, apply.output).toBe(0);
      const entry = await currentMount(devPath);
      expect(entry).toMatchObject({ fsType: `fuse.${backend}`, source: 'app-development' });
      // (Only a top-level object is read: s3fs with notsup_compat_dir, the driver's default, does
      // not show folders that have no directory object, as these seeded ones.)
      expect(await readFile(join(devPath, 'today.md'), 'utf8')).toBe('development notes\n');
      const converged = await spec.persist(['plan', '--env', 'development', '--detailed-exitcode']);
      expect(converged.code, converged.output).toBe(0);

      await rcloneSettled(spec, 'development');
      expect(await bucketSnapshot(rig.server, 'app-development')).toEqual(before.development);
      expect(await bucketSnapshot(rig.server, 'app-production')).toEqual(before.production);
    });

    const failures: { name: string; bucket: string; keys?: Keys; reason: RegExp }[] = [
      {
        name: 'bad keys',
        bucket: `badkeys-${backend}`,
        keys: { accessKeyId: 'NOTAKEY', secretAccessKey: 'NOTASECRET' },
        reason: backend === 's3fs' ? /invalid credentials/i : /InvalidAccessKeyId/,
      },
      { name: 'a missing bucket', bucket: `missing-${backend}`, reason: backend === 's3fs' ? /bucket or key not found/i : /directory not found/ },
    ];
    for (const failure of failures) {
      it(`fails fast with the daemon's reason on ${failure.name}, moving no local data`, { timeout: 120_000 }, async () => {
        if (failure.name === 'bad keys') await rig.server.createBucket(failure.bucket);
        const machine = new Machine(await rig.sandbox.tempDir(`persist-flow-fail-${backend}-`));
        await buildWorkspace(machine);
        await writeFile(machine.spec, flowSpec(rig.server, backend, failure.bucket));
        const before = await treeOf(machine, []);

        rig.server.resetCounts();
        const apply = await machine.persist(['apply', '--auto-approve'], failure.keys);
        expect(apply.code, apply.output).toBe(1);
        expect(apply.ms).toBeLessThan(20_000);
        expect(apply.stdout).toMatch(/failed: mount\.data: mounting .* failed/);
        expect(apply.output).toMatch(failure.reason);
        expect(apply.output).not.toContain('NOTASECRET');
        expect(apply.stdout).toMatch(/Apply complete: 0 applied, \d+ failed, \d+ skipped\./);
        // Nothing written. The one request allowed is the bucket lease, taken before the mount
        // through the API: with bad keys its read fails first; on a missing bucket its create is
        // refused (NoSuchBucket), which stores nothing.
        const writes = rig.server.requests().filter((r) => !['GET', 'HEAD'].includes(r.method));
        const leaseTries = failure.name === 'a missing bucket' ? [{ method: 'PUT', url: `/${failure.bucket}/.persist-lease.json` }] : [];
        expect(writes, writesSeen()).toEqual(leaseTries);
        expect(await rig.server.listObjects(failure.bucket).catch(() => [])).toEqual([]);

        expect(await treeOf(machine, [])).toEqual(before);
        for (const name of LINK_NAMES) expect((await lstat(join(machine.ws, name))).isDirectory()).toBe(true);
        expect(await currentMount(machine.mnt)).toBeUndefined();
        console.log(`${failure.name} (${backend}): apply failed after ${apply.ms} ms`);
      });
    }
  });
}
