// The whole product through its CLI on real FUSE mounts (s3fs, rclone) of buckets served by
// s3rver: a workspace saved by one apply comes back byte for byte in a new container.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import {
  convergedMachine,
  CREDENTIALS,
  flowSpec,
  FUSE_BACKENDS,
  gitStatus,
  isSymlinkTo,
  LINK_NAMES,
  Machine,
  rcloneSettled,
  repoSnapshot,
  treeOf,
} from './flow-helpers.js';

for (const backend of FUSE_BACKENDS) {
  describeE2E(`persist end to end with ${backend}: save and restore`, [backend], () => {
    const rig = e2eRig(() => startS3Server());

    it('applies the whole spec, converges, and a new container gets everything back byte for byte', { timeout: 180_000 }, async () => {
      const { machine, expected: withCredentials, repo } = await convergedMachine(rig.server, rig.sandbox, backend, `flow-${backend}-whole`);
      expect(await treeOf(machine)).toEqual(withCredentials);
      expect((await stat(join(machine.ws, '.credentials.env'))).mode & 0o777).toBe(0o600);

      const plan = await machine.persist(['plan', '--detailed-exitcode']);
      expect(plan.code, plan.output).toBe(0);
      expect(plan.stdout).toContain('No changes');

      // A new container: the old one stopped with `persist shutdown` (rclone's uploads flushed, the
      // mount gone, the lease released); the local workspace, sync folder and persist's own state are gone.
      const down = await machine.persist(['shutdown']);
      expect(down.code, down.output).toBe(0);
      await rm(machine.ws, { recursive: true, force: true });
      await rm(machine.state, { recursive: true, force: true });
      machine.newStateDir('second');

      const restored = await machine.persist(['apply', '--auto-approve']);
      expect(restored.code, restored.output).toBe(0);
      expect(restored.output).toContain('bundle.ws  restore');
      expect(restored.output).toContain('sync.state  restore');
      expect(await treeOf(machine)).toEqual(withCredentials);
      expect(repoSnapshot(machine.ws)).toEqual(repo);
      expect((await stat(join(machine.ws, '.credentials.env'))).mode & 0o777).toBe(0o600);
      expect((await stat(join(machine.state, 'devices', 'pairing.json'))).mode & 0o777).toBe(0o600);
      for (const name of LINK_NAMES) expect(await isSymlinkTo(join(machine.ws, name), join(machine.mnt, 'workspace', name))).toBe(true);
      const status = gitStatus(machine.ws);
      console.log(`git status --porcelain after restore (${backend}): ${JSON.stringify(status)}`);
      // `memory/` in .gitignore matches directories only; a symlink named memory is not one.
      expect(status.split('\n').filter(Boolean).sort()).toEqual(LINK_NAMES.map((name) => `?? ${name}`).sort());

      const after = await machine.persist(['plan', '--detailed-exitcode']);
      expect(after.code, after.output).toBe(0);
      expect(after.stdout).toContain('No changes');
    });

    it('cold start: one apply on an empty machine restores everything, a second writes nothing', { timeout: 180_000 }, async () => {
      const bucket = `flow-${backend}-cold`;
      const { machine, expected, repo } = await convergedMachine(rig.server, rig.sandbox, backend, bucket);
      expect((await machine.persist(['shutdown'])).code).toBe(0);
      const objects = await rig.server.listObjects(bucket);
      expect(objects).toEqual(expect.arrayContaining(['.credentials.env', 'workspace/ws.bundle', 'state/db.sqlite', 'workspace/logs/blob.bin']));

      // The second machine: an empty workspace folder, no .git, no sync folder, no persist state.
      await rm(machine.ws, { recursive: true, force: true });
      await rm(machine.state, { recursive: true, force: true });
      await mkdir(machine.ws);
      machine.newStateDir('cold');

      const cold = await machine.persist(['apply', '--auto-approve']);
      console.log(`cold restore (${backend}): ${cold.ms} ms`);
      expect(cold.code, cold.output).toBe(0);
      expect(await treeOf(machine)).toEqual(expected);
      expect(repoSnapshot(machine.ws)).toEqual(repo);
      expect((await stat(join(machine.ws, '.credentials.env'))).mode & 0o777).toBe(0o600);

      await rcloneSettled(machine);
      rig.server.resetCounts();
      const again = await machine.persist(['apply', '--auto-approve']);
      expect(again.code, again.output).toBe(0);
      expect(again.stdout).toContain('No changes');
      expect(rig.server.writeCount(), JSON.stringify(rig.server.requests().filter((r) => r.method !== 'GET' && r.method !== 'HEAD'))).toBe(0);
    });

    it('a brand-new setup (empty bucket, empty workspace): one apply creates every link and converges', { timeout: 120_000 }, async () => {
      const bucket = `flow-${backend}-fresh`;
      await rig.server.createBucket(bucket);
      await rig.server.putObject(bucket, '.credentials.env', CREDENTIALS);
      const machine = new Machine(await rig.sandbox.tempDir(`persist-flow-${backend}-`));
      await mkdir(machine.ws);
      await writeFile(machine.spec, flowSpec(rig.server, backend, bucket));

      // The bundle's restore is planned before the mount exists; once mounted there is no bundle
      // to restore from, and the links and the file inside the repo folder must still be made.
      const apply = await machine.persist(['apply', '--auto-approve']);
      expect(apply.code, apply.output).toBe(0);
      expect(apply.stdout).toMatch(/bundle\.ws {2}restore: already as the spec wants it/);
      for (const name of LINK_NAMES) expect(apply.stdout).toMatch(new RegExp(`✔ \\d+\\. \\+ link\\.${name} {2}create: created the link`));
      for (const name of LINK_NAMES) expect(await isSymlinkTo(join(machine.ws, name), join(machine.mnt, 'workspace', name))).toBe(true);
      expect(await readFile(join(machine.ws, '.credentials.env'))).toEqual(CREDENTIALS);

      const plan = await machine.persist(['plan', '--detailed-exitcode']);
      expect(plan.code, plan.output).toBe(0);
      expect(plan.stdout).toContain('No changes');
    });
  });
}

