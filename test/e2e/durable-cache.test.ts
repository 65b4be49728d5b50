// A dead rclone daemon with unuploaded files in its cache: the next apply uploads them (same
// config, or the same bucket at a changed endpoint port: the cache folder no longer depends on
// either), or names them in a plan conflict and mounts nothing (files left under another
// configuration's cache folder, as persist before the config file made them).
import { readdir, rename, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { bucketRuntimeDir } from '../../src/host/paths.js';
import { describeE2E, pidsWithArg, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { forwarder, holdingMachine, killDaemon, specWithWriteBack } from './durable-helpers.js';
import type { Machine } from './flow-helpers.js';
import type { MountedBucket } from '../../src/spec/types.js';

describeE2E('a dead rclone daemon with unuploaded files in its cache', ['rclone'], () => {
  const rig = e2eRig(() => startS3Server());

  /** A converged machine, remounted with a long write-back; the agent writes 5 files into a new folder; the daemon is killed. */
  async function strandedMachine(bucket: string): Promise<{ machine: Machine; cache: string }> {
    const machine = await holdingMachine(rig.server, rig.sandbox, bucket);
    await mkdir(join(machine.ws, 'memory', 'new', 'deeper'), { recursive: true });
    for (let i = 0; i < 5; i++) await writeFile(join(machine.ws, 'memory', 'new', 'deeper', `n${i}.md`), `unsaved ${i}\n`);
    await new Promise((resolve) => setTimeout(resolve, 500)); // FUSE's release reaches rclone
    await killDaemon('rclone', machine.mnt, false);
    const cache = join(bucketRuntimeDir({ PERSIST_STATE_DIR: machine.stateDir }, (await machine.bucket()) as MountedBucket), 'cache');
    expect(await readdir(join(cache, 'vfsMeta', 'persist', bucket, 'workspace', 'memory', 'new', 'deeper'))).toHaveLength(5);
    expect((await rig.server.listObjects(bucket)).filter((key) => key.includes('memory/new/'))).toEqual([]);
    return { machine, cache };
  }

  async function expectUploaded(bucket: string): Promise<void> {
    for (let i = 0; i < 5; i++) expect((await rig.server.getObject(bucket, `workspace/memory/new/deeper/n${i}.md`))?.toString()).toBe(`unsaved ${i}\n`);
  }

  it('same config: the next apply uploads them before mounting again', { timeout: 60_000 }, async () => {
    const bucket = 'stranded-same';
    const { machine, cache } = await strandedMachine(bucket);
    const plan = await machine.persist(['plan']);
    expect(plan.stdout).toMatch(/mount\.data {2}remount/);
    expect(plan.stdout).toMatch(/first uploads 5 files a stopped rclone left in its cache/);
    const apply = await machine.persist(['apply', '--auto-approve']);
    expect(apply.code, apply.output).toBe(0);
    expect(apply.stdout).toMatch(/first uploaded 5 files a stopped rclone had left in its cache/);
    await expectUploaded(bucket);
    expect(await readdir(join(cache, 'vfsMeta', 'persist', bucket, 'workspace', 'memory', 'new', 'deeper')).catch(() => [])).toEqual([]);
    const after = await machine.persist(['plan', '--detailed-exitcode']);
    expect(after.code, after.output).toBe(0);
  });

  it('changed endpoint port: the cache folder is the same, and the next apply uploads them', { timeout: 60_000 }, async () => {
    const bucket = 'stranded-port';
    const { machine } = await strandedMachine(bucket);
    const other = await forwarder(rig.server.port);
    try {
      await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '10m', other.endpoint));
      const apply = await machine.persist(['apply', '--auto-approve']);
      expect(apply.stdout).toMatch(/✔ 1\. ~ mount\.data {2}remount: .*first uploaded 5 files a stopped rclone had left in its cache/);
      await expectUploaded(bucket);
      // Lineage counts the endpoint as part of the store's identity: the sync and the bundle last
      // saved into the old endpoint are conflicts (never pushed into "another" store), not pushes.
      expect(apply.code, apply.output).toBe(1);
      expect(apply.stdout).toMatch(/! sync\.state {2}conflict/);
      expect((await machine.persist(['shutdown'])).code).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('files under another configuration: the plan names them and where they are, and nothing is mounted over them', { timeout: 60_000 }, async () => {
    const bucket = 'stranded-legacy';
    const { machine, cache } = await strandedMachine(bucket);
    // As persist before the config file left them: rclone named the folder after a hash of its environment config.
    for (const root of ['vfs', 'vfsMeta']) await rename(join(cache, root, 'persist'), join(cache, root, 'persist{Pm0r5}'));
    const plan = await machine.persist(['plan']);
    expect(plan.code, plan.output).toBe(1);
    expect(plan.stdout).toMatch(/mount\.data {2}conflict/);
    expect(plan.stdout).toContain('5 files written through an earlier rclone mount never reached bucket stranded-legacy');
    expect(plan.stdout).toContain(join(cache, 'vfs', 'persist{Pm0r5}', bucket, 'workspace', 'memory', 'new', 'deeper', 'n0.md'));
    const apply = await machine.persist(['apply', '--auto-approve']);
    expect(apply.code, apply.output).toBe(1);
    expect(apply.output).toMatch(/refused: 5 files written through an earlier rclone mount/);
    // Nothing was mounted over them: no daemon serves the path, and the files are still in the cache.
    expect(pidsWithArg('rclone', machine.mnt)).toEqual([]);
    expect(await readdir(join(cache, 'vfsMeta', 'persist{Pm0r5}', bucket, 'workspace', 'memory', 'new', 'deeper'))).toHaveLength(5);
  });
});
