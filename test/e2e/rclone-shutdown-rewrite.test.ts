// `persist shutdown` on a real rclone mount (strict S3 server) while the agent keeps rewriting a
// file through a link (every 300 ms, more often than the 1 s write-back: rclone re-arms the delay
// at each close and uploads nothing until the writes pause). Before, shutdown counted a file
// written again during its wait as not its to wait for: it said "rclone holds nothing
// unuploaded", released the lease and exited 0 with an old version in the store. Now the store
// must hold the file's content of when the wait began, or later: the wait lasts until the writes
// pause (and the last version is uploaded), or past --timeout exits 1 naming the file, lease kept.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { durableMachine, startPersist } from './durable-helpers.js';
import { waitFor, type Machine } from './flow-helpers.js';

const LIVE_KEY = 'workspace/memory/live.md';

/**
 * The agent: `v <n>` written over `file` every 300 ms (a process of its own: this one serves the S3
 * server and must never block on the mount). SIGTERM stops it between two writes, never inside one.
 */
function rewriter(file: string): ChildProcess {
  const script = `const fs=require('fs');let n=0;setInterval(()=>fs.writeFileSync(${JSON.stringify(file)},'v '+(++n)+'\\n'),300);process.on('SIGTERM',()=>process.exit(0));`;
  return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
}

async function stopAgent(agent: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => agent.once('exit', resolve));
  agent.kill('SIGTERM');
  await exited;
}

/** The version the file holds now (read through the link; retried over the writer's truncate). */
async function versionOf(file: string): Promise<number> {
  let version = 0;
  await waitFor(`a version in ${file}`, async () => {
    version = Number(/^v (\d+)\n$/.exec(await readFile(file, 'utf8'))?.[1] ?? 0);
    return version > 0;
  });
  return version;
}

async function storedVersion(server: { getObject(bucket: string, key: string): Promise<Buffer | null | undefined> }, bucket: string): Promise<number> {
  return Number(/^v (\d+)\n$/.exec((await server.getObject(bucket, LIVE_KEY))?.toString() ?? '')?.[1] ?? 0);
}

describeE2E('persist shutdown while the agent keeps rewriting a file through an rclone link', ['rclone'], () => {
  const rig = e2eRig(() => startStrictS3Server());

  async function busyMachine(bucket: string): Promise<{ machine: Machine; live: string; agent: ChildProcess }> {
    const { machine } = await durableMachine(rig.server, rig.sandbox, 'rclone', bucket, '1s', 0);
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);
    const live = join(machine.ws, 'memory', 'live.md');
    await writeFile(live, 'v 0\n');
    const agent = rewriter(live);
    await waitFor('the agent to be writing', async () => (await versionOf(live)) >= 5);
    return { machine, live, agent };
  }

  it('waits until the writes pause and the store holds the last version, then exits 0', { timeout: 150_000 }, async () => {
    const bucket = 'rewrite-pause';
    const { machine, live, agent } = await busyMachine(bucket);
    try {
      const atStart = await versionOf(live);
      const shutdown = startPersist(machine, ['shutdown', '--keep-mounted', '--timeout', '60s']);
      // The saves are done (step 1): the mount wait begins. The agent writes on for 5 s more.
      await waitFor('shutdown to save the bundle', () => /bundle\.ws/.test(shutdown.output()), 60_000);
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      await stopAgent(agent);
      const stopped = await shutdown.done;
      // Read at the server the moment shutdown returned.
      const stored = await storedVersion(rig.server, bucket);
      expect(stopped.code, stopped.output).toBe(0);
      expect(stored, stopped.output).toBeGreaterThanOrEqual(atStart);
      expect(stored).toBe(await versionOf(live));
      expect(stopped.stdout).toMatch(/mount\.data: rclone holds nothing unuploaded/);
    } finally {
      agent.kill('SIGKILL');
    }
  });

  it('past --timeout with the agent still writing: exits 1 naming the file, and keeps the lease', { timeout: 150_000 }, async () => {
    const bucket = 'rewrite-endless';
    const { machine, live, agent } = await busyMachine(bucket);
    try {
      const atStart = await versionOf(live);
      const stopped = await machine.persist(['shutdown', '--keep-mounted', '--timeout', '10s']);
      const stored = await storedVersion(rig.server, bucket);
      expect(stored, 'rclone uploads nothing while the writes go on').toBeLessThan(atStart);
      expect(stopped.code, stopped.output).toBe(1);
      expect(stopped.stdout).toMatch(/mount\.data: rclone at .* still had 1 upload pending .*workspace\/memory\/live\.md \(last written/);
      // The lease the apply took is not released: the next container waits for it.
      expect(stopped.stdout).not.toMatch(/released the lease/);
      expect(await rig.server.getObject(bucket, '.persist-lease.json')).toBeTruthy();
    } finally {
      agent.kill('SIGKILL');
    }
  });
});
