// `persist shutdown` on a real s3fs mount of the strict loopback server: right after the agent
// wrote through a link and into a sync folder it exits 0 only once the server holds all of it,
// releases the bucket lease, and leaves no mount and no daemon. And when the daemon died before
// the stop (s3fs, or rclone with files still in its cache), shutdown mounts again first (rclone's
// remount uploads what the dead daemon left) and saves, instead of reporting it as not saved. When
// rclone dies while shutdown waits for its uploads, the dead mount is left for the next remount to
// upload from its cache, and said so (not that rclone "keeps uploading").
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { describeE2E, pidsWithArg, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { mountAt } from '../../src/host/mountinfo.js';
import { RealHost } from '../../src/host/real.js';
import { durableMachine, killDaemon, specWithWriteBack } from './durable-helpers.js';
import { FUSE_BACKENDS, GOOD_KEYS, waitFor } from './flow-helpers.js';

const PERSIST_BIN = fileURLToPath(new URL('../../bin/persist.js', import.meta.url));

interface ShutdownJson {
  ok: boolean;
  items: { address: string; status: string; message: string }[];
}

async function agentWrites(folder: string, count: number, prefix: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(join(folder, `${prefix}-${i}.md`), `written by the agent ${i}\n`);
}

async function noMountNoDaemon(backend: string, path: string): Promise<void> {
  expect(mountAt(await new RealHost().mounts(), path)).toBeUndefined();
  await waitFor(`${backend} to exit`, () => pidsWithArg(backend, path).length === 0, 10_000);
}

describeE2E('persist shutdown with s3fs', ['s3fs'], () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('exits 0 only once the server holds the 30 files the agent just wrote and its last sync change; lease released, no mount or daemon left', { timeout: 120_000 }, async () => {
    const bucket = 'shutdown-s3fs';
    const { machine } = await durableMachine(rig.server, rig.sandbox, 's3fs', bucket, '1s', 0);
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);
    expect(await rig.server.listObjects(bucket)).toContain('.persist-lease.json');

    await agentWrites(join(machine.ws, 'memory', 'today'), 30, 'fresh');
    await writeFile(join(machine.state, 'last-words.txt'), 'pushed by shutdown\n');
    const stopped = await machine.persist(['shutdown', '--json']);
    const keys = await rig.server.listObjects(bucket);
    expect(stopped.code, stopped.output).toBe(0);
    expect(keys.filter((key) => key.startsWith('workspace/memory/today/fresh-'))).toHaveLength(30);
    for (let i = 0; i < 30; i++) expect((await rig.server.getObject(bucket, `workspace/memory/today/fresh-${i}.md`))?.toString()).toBe(`written by the agent ${i}\n`);
    expect((await rig.server.getObject(bucket, 'state/last-words.txt'))?.toString()).toBe('pushed by shutdown\n');
    expect(keys).not.toContain('.persist-lease.json');
    const report = JSON.parse(stopped.stdout) as ShutdownJson;
    expect(report.ok).toBe(true);
    expect(report.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ address: 'sync.state', status: 'saved', message: expect.stringMatching(/^push: /) }),
        expect.objectContaining({ address: 'lease', status: 'saved', message: `released the lease s3://${bucket}/.persist-lease.json` }),
        expect.objectContaining({ address: 'mount.data', status: 'unmounted' }),
      ]),
    );
    await noMountNoDaemon('s3fs', machine.mnt);
  });
});

for (const backend of FUSE_BACKENDS) {
  describeE2E(`persist shutdown after the ${backend} daemon died`, [backend], () => {
    const rig = e2eRig(() => startStrictS3Server());

    it('mounts again and saves what the agent wrote (the dead rclone cache\'s files uploaded), instead of reporting it unsaved', { timeout: 150_000 }, async () => {
      const bucket = `shutdown-dead-${backend}`;
      const { machine } = await durableMachine(rig.server, rig.sandbox, backend, bucket, '1s', 0);
      expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
      if (backend === 'rclone') {
        // A write-back far longer than the test: only a remount that uploads the cache saves these.
        expect((await machine.persist(['shutdown'])).code).toBe(0);
        await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '10m'));
        expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
        await agentWrites(join(machine.ws, 'memory', 'cached'), 5, 'unsaved');
        await new Promise((resolve) => setTimeout(resolve, 500)); // FUSE's release reaches rclone
      }
      await writeFile(join(machine.state, 'after-the-crash.txt'), 'written while the mount was dead\n');
      await killDaemon(backend, machine.mnt, false); // the dead mount stays in the mount table
      // (The new daemon uploads at the usual pace; the dead one's files are in the same cache folder.)
      if (backend === 'rclone') await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '1s'));

      const stopped = await machine.persist(['shutdown']);
      expect(stopped.code, stopped.output).toBe(0);
      expect(stopped.stdout).toMatch(/✔ mount\.data: remount: /);
      expect(stopped.stdout).toMatch(/✔ sync\.state: push: /);
      expect(stopped.stdout).toContain('Shutdown complete in');
      expect((await rig.server.getObject(bucket, 'state/after-the-crash.txt'))?.toString()).toBe('written while the mount was dead\n');
      if (backend === 'rclone') {
        expect(stopped.stdout).toMatch(/first uploaded 5 files a stopped rclone had left in its cache/);
        for (let i = 0; i < 5; i++) expect((await rig.server.getObject(bucket, `workspace/memory/cached/unsaved-${i}.md`))?.toString()).toBe(`written by the agent ${i}\n`);
      }
      expect(await rig.server.listObjects(bucket)).not.toContain('.persist-lease.json');
      await noMountNoDaemon(backend, machine.mnt);
    });
  });
}

describeE2E('persist shutdown when the rclone daemon dies while it waits for the uploads', ['rclone'], () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('leaves the dead mount and says that nothing uploads until the next apply or shutdown remounts (not that rclone keeps uploading)', { timeout: 120_000 }, async () => {
    const bucket = 'shutdown-dies-waiting';
    const { machine } = await durableMachine(rig.server, rig.sandbox, 'rclone', bucket, '1s', 0);
    expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
    expect((await machine.persist(['shutdown'])).code).toBe(0);
    // A write-back far longer than the test: the agent's files stay in rclone's cache, and
    // shutdown's wait for them is still running when the daemon is killed.
    await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '10m'));
    expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
    await agentWrites(join(machine.ws, 'memory', 'cached'), 3, 'unsaved');
    await new Promise((resolve) => setTimeout(resolve, 500)); // FUSE's release reaches rclone

    const env = { ...process.env, PERSIST_STATE_DIR: machine.stateDir, E2E_S3_KEY: GOOD_KEYS.accessKeyId, E2E_S3_SECRET: GOOD_KEYS.secretAccessKey, NO_COLOR: '1' };
    const child = spawn(process.execPath, [PERSIST_BIN, 'shutdown', '--timeout', '30s', '-f', machine.spec], { cwd: machine.root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Past the saves (nothing to save: a remount there would upload the cache), into the wait.
    await waitFor('shutdown to be past its saves', () => /✔ sync\.state: /.test(stdout) && /✔ bundle\.ws: /.test(stdout), 20_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await killDaemon('rclone', machine.mnt, false); // the dead mount stays in the mount table
    expect(await code, stdout).toBe(1);
    expect(stdout).toMatch(/✖ mount\.data: rclone at .* does not answer on its rc port/);
    expect(stdout).toMatch(new RegExp(`• mount\\.data: left mounted at ${machine.mnt}: rclone does not answer there \\(.+\\), so nothing is uploading; its cache may hold files the store does not have: the next apply or shutdown remounts and uploads them\\n`));
    expect(stdout).not.toContain('keeps uploading');

    // As it says: the next shutdown remounts and uploads them.
    await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '1s'));
    const next = await machine.persist(['shutdown']);
    expect(next.code, next.output).toBe(0);
    for (let i = 0; i < 3; i++) expect((await rig.server.getObject(bucket, `workspace/memory/cached/unsaved-${i}.md`))?.toString()).toBe(`written by the agent ${i}\n`);
  });
});
