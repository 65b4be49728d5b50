// A redeploy on real FUSE mounts (s3fs, rclone) of the strict loopback server, whose conditional
// writes make the bucket lease real: container A holds the lease under `persist watch`; container
// B's first apply waits for it (before it mounts and restores); A's watch stops and A's
// `persist shutdown` pushes A's last change and releases the lease; B then restores that change.
import { execFileSync } from 'node:child_process';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, pidsWithArg, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { durableMachine, startPersist } from './durable-helpers.js';
import { FUSE_BACKENDS, Machine, manifest, waitFor } from './flow-helpers.js';

for (const backend of FUSE_BACKENDS) {
  describeE2E(`a redeploy on ${backend}: the bucket lease`, [backend], () => {
    const rig = e2eRig(() => startStrictS3Server());

    it("B's first apply waits for A's lease (held under watch); A's shutdown pushes its last change and releases; B restores it", { timeout: 240_000 }, async () => {
      const bucket = `redeploy-${backend}`;
      const { machine: a } = await durableMachine(rig.server, rig.sandbox, backend, bucket, '1s', 3);
      // The links are not the repo's: ignored as files too (the flow's `memory/` matches folders
      // only, so the bundle's work-tree snapshot would carry A's links to A's mount path).
      await writeFile(join(a.ws, '.gitignore'), 'memory\nconfig\nlogs\n.credentials.env\n.persist-backups/\n');
      execFileSync('git', ['-C', a.ws, '-c', 'user.name=Agent', '-c', 'user.email=agent@example.test', 'commit', '-q', '-am', 'ignore the links']);
      const booted = await a.persist(['apply', '--auto-approve']);
      expect(booted.code, booted.output).toBe(0);
      const machineA = (await readFile(join(a.stateDir, 'machine-id'), 'utf8')).trim();
      const watchA = startPersist(a, ['watch', '--interval', '1s', '--auto-approve']);
      await waitFor('A\'s first watch round', () => / round 0\] no changes$/m.test(watchA.output()), 30_000);

      // B: the same spec in a fresh container (its own folders and state folder).
      const b = new Machine(await rig.sandbox.tempDir(`persist-redeploy-${backend}-b-`));
      await cp(a.spec, b.spec);
      const bootB = startPersist(b, ['apply', '--auto-approve', '--lock-timeout', '120s']);
      await waitFor('B to wait for the lease', () => bootB.stderr().includes(`for the bucket lease s3://${bucket}/.persist-lease.json, held by machine ${machineA}`), 60_000);
      // Held under watch: past several watch rounds B still waits, and has neither mounted nor restored.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(bootB.output()).not.toMatch(/✔ 1\. \+ mount\.data/);
      expect(pidsWithArg(backend, b.mnt)).toEqual([]);
      expect(await stat(b.state).catch(() => null)).toBeNull();

      // A's last change, in its sync folder and through its link; then the container stops.
      await writeFile(join(a.state, 'last.txt'), 'the final push\n');
      await writeFile(join(a.ws, 'memory', 'last-note.md'), 'written through the link at the end\n');
      watchA.kill('SIGTERM');
      expect((await watchA.done).code).toBe(0);
      const down = await a.persist(['shutdown']);
      expect(down.code, down.output).toBe(0);
      expect(down.stdout).toMatch(/✔ sync\.state: push: /);
      expect(down.stdout).toContain(`✔ lease: released the lease s3://${bucket}/.persist-lease.json`);

      const restored = await bootB.done;
      expect(restored.code, restored.output).toBe(0);
      expect(await readFile(join(b.state, 'last.txt'), 'utf8')).toBe('the final push\n');
      expect(await manifest(b.state)).toEqual(await manifest(a.state));
      expect(await readFile(join(b.ws, 'memory', 'last-note.md'), 'utf8')).toBe('written through the link at the end\n');
      const machineB = (await readFile(join(b.stateDir, 'machine-id'), 'utf8')).trim();
      const status = await b.persist(['status']);
      expect(status.stdout).toMatch(new RegExp(`ok +lease\\.data .*holder=${machineB}`));
      expect((await b.persist(['shutdown'])).code).toBe(0);
    });
  });
}
