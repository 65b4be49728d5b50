// rclone SIGKILLed right after the agent wrote through a link: rclone records a new file's
// metadata (`"Size": 0`, dirty) when the first write begins and its size only when the file is
// closed, so a kill in between leaves a data file whose bytes its metadata does not count. The
// next apply must upload the bytes actually in the cache and judge them by what the store holds
// (size and content), then mount again: before, it compared the store with the metadata's 0 and
// refused every remount from then on.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { bucketRuntimeDir } from '../../src/host/paths.js';
import type { MountedBucket } from '../../src/spec/types.js';
import { describeE2E, e2eRig, pidsWithArg } from '../helpers/e2e.js';
import { startS3Server } from '../helpers/s3server.js';
import { holdingMachine } from './durable-helpers.js';
import { waitFor } from './flow-helpers.js';

describeE2E('rclone SIGKILLed right after a write through a link', ['rclone'], () => {
  const rig = e2eRig(() => startS3Server());

  for (const cut of [false, true]) {
    const what = cut ? "x2.md's record cut off (killed while rclone wrote it)" : "x2.md's record counting none of its bytes";
    it(`the next apply uploads the bytes in the cache, checks them in the store, and mounts again: ${what}`, { timeout: 90_000 }, async () => {
      const bucket = cut ? 'killed-write-cut' : 'killed-write';
      const machine = await holdingMachine(rig.server, rig.sandbox, bucket);
      const [pid] = pidsWithArg('rclone', machine.mnt);
      const memory = join(machine.ws, 'memory');
      // A shell of its own (this process serves the S3 server: it must never block on the mount).
      await promisify(execFile)('sh', ['-c', `echo hello > ${memory}/x1.md; echo hello2 > ${memory}/x2.md; kill -9 ${pid}`]);
      await waitFor('rclone to exit', () => pidsWithArg('rclone', machine.mnt).length === 0);
      const cache = join(bucketRuntimeDir({ PERSIST_STATE_DIR: machine.stateDir }, (await machine.bucket()) as MountedBucket), 'cache');
      // As the kill leaves x2.md when it lands between the write and the close (it mostly does
      // here; made certain): dirty, its metadata counting none of the 7 bytes in its data file;
      // here; made certain), or as a kill while rclone rewrites that record leaves it: empty.
      const meta = join(cache, 'vfsMeta', 'persist', bucket, 'workspace', 'memory', 'x2.md');
      const recorded = await readFile(meta, 'utf8');
      await writeFile(meta, cut ? '' : JSON.stringify({ ...(recorded ? JSON.parse(recorded) : {}), Size: 0, Rs: null, Dirty: true }));
      expect(await readFile(join(cache, 'vfs', 'persist', bucket, 'workspace', 'memory', 'x2.md'), 'utf8')).toBe('hello2\n');

      const plan = await machine.persist(['plan']);
      expect(plan.stdout).toMatch(/first uploads 2 files a stopped rclone left in its cache/);
      const apply = await machine.persist(['apply', '--auto-approve']);
      expect(apply.code, apply.output).toBe(0);
      expect(apply.stdout).toMatch(/✔ 1\. ~ mount\.data {2}remount: .*first uploaded 2 files a stopped rclone had left in its cache/);
      expect((await rig.server.getObject(bucket, 'workspace/memory/x1.md'))?.toString()).toBe('hello\n');
      expect((await rig.server.getObject(bucket, 'workspace/memory/x2.md'))?.toString()).toBe('hello2\n');
      // Mounted again, nothing left to upload: the next plan has nothing to do, and shutdown saves and releases.
      expect(pidsWithArg('rclone', machine.mnt)).toHaveLength(1);
      expect(await readFile(join(memory, 'x2.md'), 'utf8')).toBe('hello2\n');
      const after = await machine.persist(['plan', '--detailed-exitcode']);
      expect(after.code, after.output).toBe(0);
      const down = await machine.persist(['shutdown']);
      expect(down.code, down.output).toBe(0);
    });
  }
});
