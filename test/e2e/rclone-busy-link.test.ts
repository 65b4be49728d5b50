// rclone re-arms a file's write-back delay each time it is closed after a change (rclone 1.60
// vfs/vfscache/writeback: `Add` kicks the expiry on), so a file the agent appends to more often
// than `writeBack` is not uploaded until the writes pause, and rclone's upload queue is never
// empty meanwhile. Found by test/e2e/kill-under-watch.test.ts: every push through the mount then
// waited for that queue for the whole durable wait (2 min) and failed, so watch saved nothing while
// the agent wrote its log. A push must wait for its own files only.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { bucketYaml, Machine } from './flow-helpers.js';

describeE2E('a push through rclone while the agent keeps appending to a linked file', ['rclone'], () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('the push waits for its own files, not for the file the agent keeps busy', { timeout: 180_000 }, async () => {
    const bucket = 'busy-link';
    await rig.server.createBucket(bucket);
    const machine = new Machine(await rig.sandbox.tempDir('persist-busy-link-'));
    await mkdir(join(machine.ws, 'logs'), { recursive: true });
    await writeFile(join(machine.ws, 'logs', 'agent.log'), 'started\n');
    await mkdir(join(machine.root, 'db'), { recursive: true });
    await writeFile(join(machine.root, 'db', 'settings.json'), '{"n":0}\n');
    const spec = ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', bucketYaml(rig.server, 'rclone', bucket, './mnt', '    '), 'links:', '  logs: workspace/logs', 'syncs:', '  db:', '    from: ./db', '    to: db', ''];
    await writeFile(machine.spec, spec.join('\n'));
    const first = await machine.persist(['apply', '--auto-approve']);
    expect(first.code, first.output).toBe(0);

    // The agent: a line appended every 200 ms through the link (a process of its own: this one
    // serves the S3 server, so it must never block on the mount).
    const log = join(machine.ws, 'logs', 'agent.log');
    const agent: ChildProcess = spawn(process.execPath, ['-e', `const fs=require('fs');let n=0;setInterval(()=>fs.appendFileSync(${JSON.stringify(log)},'line '+(++n)+'\\n'),200);`], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await writeFile(join(machine.root, 'db', 'settings.json'), '{"n":1}\n');
      const pushed = await machine.persist(['apply', '--auto-approve']);
      expect(pushed.code, pushed.output).toBe(0);
      expect(pushed.output).toMatch(/sync\.db {2}push/);
      expect(pushed.ms, 'the push did not wait for the busy log').toBeLessThan(30_000);
      expect((await rig.server.getObject(bucket, 'db/settings.json'))?.toString()).toBe('{"n":1}\n');
    } finally {
      agent.kill('SIGKILL');
    }
  });
});
