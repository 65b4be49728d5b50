// A container that comes back with its workspace (links in place) but its FUSE mount gone, onto a
// bucket that was emptied meanwhile (or a new one): the links are right, but their target folders
// are not in the bucket. Before the mount is up nobody can tell, so plan proposes to look again
// after it; one apply mounts and makes the folders, and the agent can write through every link.
// Before, the apply that mounted left the targets missing (writes through the links failed) and
// only the next plan saw it.
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { bucketYaml, FUSE_BACKENDS, Machine, waitFor } from './flow-helpers.js';

const BUCKET = 'emptied-bucket';
const LINKS = ['memory', 'notes'];

for (const backend of FUSE_BACKENDS) {
  describeE2E(`a bucket emptied under links that are right (${backend})`, [backend], () => {
    const rig = e2eRig(() => startS3Server([BUCKET]));

    it('one apply mounts and makes every target folder again; the next plan has nothing to do', { timeout: 240_000 }, async () => {
      const machine = new Machine(await rig.sandbox.tempDir(`persist-emptied-${backend}-`));
      await mkdir(machine.ws, { recursive: true });
      const links = LINKS.map((name) => `  ${name}: workspace/${name}`);
      await writeFile(machine.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', bucketYaml(rig.server, backend, BUCKET, './mnt', '    '), 'links:', ...links, ''].join('\n'));
      const first = await machine.persist(['apply', '--auto-approve']);
      expect(first.code, first.output).toBe(0);
      await writeFile(join(machine.ws, 'memory', 'before.md'), 'written before the restart\n');
      await waitFor('the first write in the bucket', async () => (await rig.server.listObjects(BUCKET)).includes('workspace/memory/before.md'), 60_000);

      // The container stops (its mount goes with it, not through persist), and the bucket is emptied.
      const unmounted = spawnSync('fusermount3', ['-u', '-z', machine.mnt], { encoding: 'utf8' });
      expect(unmounted.status, unmounted.stderr).toBe(0);
      for (const key of await rig.server.listObjects(BUCKET)) await rig.server.deleteObject(BUCKET, key);
      expect(await rig.server.listObjects(BUCKET)).toEqual([]);

      const plan = await machine.persist(['plan']);
      expect(plan.code, plan.output).toBe(0);
      for (const name of LINKS) expect(plan.stdout).toMatch(new RegExp(`link\\.${name} +create\\b[^\\n]*\\n?[^\\n]*the target directory is made after the mount if it is missing`));
      const applied = await machine.persist(['apply', '--auto-approve']);
      expect(applied.code, applied.output).toBe(0);
      const after = await machine.persist(['plan', '--detailed-exitcode']);
      expect(after.code, after.output).toBe(0);
      for (const name of LINKS) {
        expect(await readlink(join(machine.ws, name))).toBe(join(machine.mnt, 'workspace', name));
        await writeFile(join(machine.ws, name, 'after.md'), `${name} after the restart\n`);
        expect(await readFile(join(machine.ws, name, 'after.md'), 'utf8')).toBe(`${name} after the restart\n`);
      }
      await waitFor('the writes after the restart in the bucket', async () => {
        const keys = await rig.server.listObjects(BUCKET);
        return LINKS.every((name) => keys.includes(`workspace/${name}/after.md`));
      }, 60_000);
      // Mounted and every target there: a second apply is a no-op.
      const again = await machine.persist(['apply', '--auto-approve']);
      expect(again.code, again.output).toBe(0);
      expect(again.stdout).toContain('No changes');
    });
  });
}
