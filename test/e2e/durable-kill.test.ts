// "Complete" means in the store: an apply that reported success through a real FUSE mount, then
// the daemon SIGKILLed at once, persist's state folder and the workspace deleted (a new
// container): a second apply brings everything back byte for byte. rclone runs with a 3 s
// write-back here, so without persist's durable wait the last actions' files would still
// sit in its cache when it dies. The dead container never released its bucket lease (a 5 s time
// to live here): the new one waits for it to expire, then restores.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { FUSE_BACKENDS, repoSnapshot, sha256, treeOf, CREDENTIALS } from './flow-helpers.js';
import { durableMachine, killDaemon } from './durable-helpers.js';

for (const backend of FUSE_BACKENDS) {
  describeE2E(`durable writes with ${backend}`, [backend], () => {
    const rig = e2eRig(() => startS3Server());

    it('an applied adopt and bundle survive a SIGKILL of the daemon right after apply, in a new container', { timeout: 120_000 }, async () => {
      const bucket = `durable-kill-${backend}`;
      const { machine, original } = await durableMachine(rig.server, rig.sandbox, backend, bucket, '3s', 34, '5s');
      const repo = repoSnapshot(machine.ws);
      const applied = await machine.persist(['apply', '--auto-approve']);
      expect(applied.code, applied.output).toBe(0);
      expect(applied.output).toMatch(/Apply complete: 7 applied, 0 failed, 0 skipped/);

      // At once: the daemon dies with whatever its cache still holds; the container goes away.
      await killDaemon(backend, machine.mnt);
      const keys = await rig.server.listObjects(bucket);
      expect(keys.filter((key) => key.startsWith('workspace/memory/many/') && !key.endsWith('/'))).toHaveLength(34);
      expect(keys).toContain('workspace/ws.bundle');
      await rm(machine.ws, { recursive: true, force: true });
      await rm(machine.state, { recursive: true, force: true });
      const oldMachine = (await readFile(join(machine.stateDir, 'machine-id'), 'utf8')).trim();
      await rm(machine.stateDir, { recursive: true, force: true });
      machine.newStateDir('new-container');

      const restored = await machine.persist(['apply', '--auto-approve', '--lock-timeout', '30s']);
      expect(restored.code, restored.output).toBe(0);
      // It waited for the dead container's lease, or (on a slow machine) found it expired already.
      expect(restored.stderr).toMatch(new RegExp(`(for the bucket lease s3://${bucket}/\\.persist-lease\\.json, held by|took over the bucket lease s3://${bucket}/\\.persist-lease\\.json from) machine ${oldMachine}`));
      expect(restored.output).toContain('bundle.ws  restore');
      expect(await treeOf(machine)).toEqual({ ...original, '.credentials.env': `file ${sha256(CREDENTIALS)}` });
      expect(repoSnapshot(machine.ws)).toEqual(repo);
    });
  });
}
