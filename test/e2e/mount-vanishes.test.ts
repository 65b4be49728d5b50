// A real s3fs mount unmounted while an apply is adopting folders into it: the action in progress
// stops before it writes into the bare mount point, every later action on the bucket is refused,
// nothing at all lands under the mount point on local disk, no original is lost, and the next
// apply mounts again and converges.
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { bucketYaml, Machine, manifest, runPersist, waitFor } from './flow-helpers.js';

const BUCKET = 'vanishing-mount';
const FOLDERS = { memory: 200, config: 10, logs: 10 };

/** Every file below `dir` (recursively), relative. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) found.push(...(await filesUnder(join(dir, entry.name), rel)));
    else found.push(rel);
  }
  return found;
}

describeE2E('a mount that vanishes in the middle of an apply (s3fs)', ['s3fs'], () => {
  const rig = e2eRig(() => startS3Server([BUCKET]));

  it('stops the adopt in progress, refuses the rest, and writes nothing under the bare mount point', { timeout: 400_000 }, async () => {
    const machine = new Machine(await rig.sandbox.tempDir('persist-vanish-'));
    const original: Record<string, string> = {};
    for (const [name, count] of Object.entries(FOLDERS)) {
      for (let i = 0; i < count; i++) {
        const rel = `${name}/${String(i).padStart(4, '0')}.md`;
        const content = `${rel} ${'x'.repeat(i % 97)}\n`;
        await mkdir(join(machine.ws, name), { recursive: true });
        await writeFile(join(machine.ws, rel), content);
        original[rel] = content;
      }
    }
    const links = Object.keys(FOLDERS).map((name) => `  ${name}: workspace/${name}`);
    await writeFile(machine.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', bucketYaml(rig.server, 's3fs', BUCKET, './mnt', '    '), 'links:', ...links, ''].join('\n'));
    const before = await manifest(machine.ws);

    const applying = machine.persist(['apply', '--auto-approve']);
    let finished = false;
    void applying.then(() => (finished = true));
    // The adopt of memory is under way once its first objects reach the server.
    await waitFor('the first adopted files in the bucket', async () => finished || (await rig.server.listObjects(BUCKET)).some((key) => key.startsWith('workspace/memory/')), 120_000);
    expect(finished, 'apply finished before the mount could be taken away; make the folder bigger').toBe(false);
    const unmounted = spawnSync('fusermount', ['-u', '-z', machine.mnt], { encoding: 'utf8' });
    expect(unmounted.status, unmounted.stderr).toBe(0);

    const applied = await applying;
    expect(applied.code, applied.output).toBe(1);
    expect(applied.stdout).toMatch(/link\.memory {2}adopt: mount\.data went away during the action; stopped before writing into /);
    for (const name of ['config', 'logs']) {
      expect(applied.stdout).toMatch(new RegExp(`link\\.${name} {2}adopt: mount\\.data is not mounted; nothing written into ${machine.mnt}`));
    }
    // Nothing at all under the bare mount point.
    expect(await filesUnder(machine.mnt)).toEqual([]);
    // Every original is still on local disk: in its folder, or in the adopt's backup.
    const local = await manifest(machine.ws, ['.persist-backups']);
    const backups = await manifest(join(machine.ws, '.persist-backups')).catch(() => ({}));
    for (const [rel, hash] of Object.entries(before)) {
      if (hash === 'dir') continue;
      const inBackup = Object.entries(backups).some(([path, h]) => path.endsWith(rel.slice(rel.indexOf('/'))) && h === hash);
      expect(local[rel] === hash || inBackup, `${rel} is neither in place nor in a backup`).toBe(true);
    }

    // The next apply mounts again and finishes the job.
    const healed = await runPersist(['apply', '--auto-approve', '-f', machine.spec], { cwd: machine.root, stateDir: machine.stateDir, timeoutMs: 200_000 });
    expect(healed.code, healed.output).toBe(0);
    console.log(`vanishing mount (s3fs): first apply ${applied.ms} ms (stopped), healing apply ${healed.ms} ms`);
    for (const name of Object.keys(FOLDERS)) expect(await readlink(join(machine.ws, name))).toBe(join(machine.mnt, 'workspace', name));
    // Read asynchronously: s3rver answers s3fs from this process's event loop.
    for (const [rel, content] of Object.entries(original)) expect(await readFile(join(machine.ws, rel), 'utf8'), rel).toBe(content);
    const plan = await machine.persist(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.output).toBe(0);
  });
});
