// `persist shutdown` on a real rclone mount of s3rver: right after the agent wrote 30 files
// through a link it exits 0 only once the server holds all 30 (counted at the server), and leaves
// no mount and no daemon; with a write-back longer than its --timeout it exits 1 naming the mount
// that still holds unuploaded files, and does not unmount over them.
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, pidsWithArg, e2eRig } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { mountAt } from '../../src/host/mountinfo.js';
import { RealHost } from '../../src/host/real.js';
import { durableMachine, specWithWriteBack } from './durable-helpers.js';

describeE2E('persist shutdown with rclone', ['rclone'], () => {
  const rig = e2eRig(() => startS3Server());

  async function agentWrites(folder: string, count: number): Promise<void> {
    await mkdir(folder, { recursive: true });
    for (let i = 0; i < count; i++) await writeFile(join(folder, `fresh-${i}.md`), `written by the agent ${i}\n`);
  }

  it('exits 0 only once the server holds all 30 files the agent just wrote, with no mount or daemon left', { timeout: 90_000 }, async () => {
    const bucket = 'shutdown-ok';
    const { machine } = await durableMachine(rig.server, rig.sandbox, 'rclone', bucket, '1s', 0);
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);

    await agentWrites(join(machine.ws, 'memory', 'today'), 30);
    const stopped = await machine.persist(['shutdown', '--json']);
    // Counted at the server the moment shutdown returned.
    const keys = (await rig.server.listObjects(bucket)).filter((key) => key.startsWith('workspace/memory/today/fresh-'));
    expect(stopped.code, stopped.output).toBe(0);
    expect(keys).toHaveLength(30);
    for (let i = 0; i < 30; i++) expect((await rig.server.getObject(bucket, `workspace/memory/today/fresh-${i}.md`))?.toString()).toBe(`written by the agent ${i}\n`);
    const report = JSON.parse(stopped.stdout) as { ok: boolean; items: { address: string; status: string }[] };
    expect(report.ok).toBe(true);
    expect(report.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ address: 'sync.state', status: 'saved' }),
        expect.objectContaining({ address: 'bundle.ws', status: 'saved' }),
        expect.objectContaining({ address: 'mount.data', status: 'saved' }),
        expect.objectContaining({ address: 'mount.data', status: 'unmounted' }),
      ]),
    );
    expect(mountAt(await new RealHost().mounts(), machine.mnt)).toBeUndefined();
    expect(pidsWithArg('rclone', machine.mnt)).toEqual([]);
  });

  it('past --timeout exits 1 naming the mount that still holds unuploaded files, and keeps it mounted', { timeout: 90_000 }, async () => {
    const bucket = 'shutdown-timeout';
    const { machine } = await durableMachine(rig.server, rig.sandbox, 'rclone', bucket, '1s', 0);
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);
    // Remount with a write-back far longer than the timeout (a slow or stuck upload looks the same).
    await writeFile(machine.spec, specWithWriteBack(rig.server, 'rclone', bucket, '5m'));
    const down = await machine.persist(['shutdown']);
    expect(down.code, down.output).toBe(0);
    const up = await machine.persist(['apply', '--auto-approve']);
    expect(up.code, up.output).toBe(0);

    await agentWrites(join(machine.ws, 'memory', 'late'), 3);
    const started = Date.now();
    const stopped = await machine.persist(['shutdown', '--timeout', '4s']);
    expect(stopped.code, stopped.output).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(stopped.stdout).toMatch(/Shutdown (timed out|failed) after [\d.]+ s; not saved: mount\.data/);
    expect(stopped.stdout).toMatch(/mount\.data: rclone at .* still had 3 uploads pending after .*workspace\/memory\/late\/fresh-0\.md/);
    // Not unmounted over the pending files: the daemon keeps trying.
    expect(mountAt(await new RealHost().mounts(), machine.mnt)).toBeDefined();
    expect(pidsWithArg('rclone', machine.mnt)).toHaveLength(1);
    expect((await rig.server.listObjects(bucket)).filter((key) => key.includes('memory/late/fresh-'))).toEqual([]);
  });
});
