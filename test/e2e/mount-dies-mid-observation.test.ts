// A FUSE daemon killed (SIGKILL) while persist looks at the machine, after its mount's own
// observation found it alive: every later read in the mount fails with ENOTCONN. The moment is
// made exact by a preload in the CLI's process: the first read under the mount point from the
// main thread (the mount's own probe is an `ls` subprocess, so this is the first read after it)
// kills the daemon and waits until it is gone, then reads. `persist plan` shows a conflict per
// resource naming the dead mount (never an internal error) and the next plan remounts it;
// `persist shutdown` tries again, remounts (rclone's new daemon uploads what the dead one left in
// its cache) and saves everything, exit 0, as when the daemon was dead before it started.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { describeE2E, e2eRig, pidsWithArg } from '../helpers/e2e.js';
import { startStrictS3Server } from '../helpers/s3server.js';
import { durableMachine } from './durable-helpers.js';
import { FUSE_BACKENDS, type Machine, type RunResult } from './flow-helpers.js';

/** Loaded with --import into the CLI: the kill, at the first read under PERSIST_TEST_KILL_UNDER. */
const PRELOAD = `
import { promises } from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const under = process.env.PERSIST_TEST_KILL_UNDER;
const pid = Number(process.env.PERSIST_TEST_KILL_PID);
delete process.env.NODE_OPTIONS;
let fired = false;
const gone = () => !existsSync('/proc/' + pid) || /^\\d+ \\(.*\\) Z/.test(readFileSync('/proc/' + pid + '/stat', 'utf8'));
for (const name of ['lstat', 'stat', 'readdir', 'readFile', 'readlink', 'open', 'access', 'opendir']) {
  const original = promises[name];
  promises[name] = function (path, ...rest) {
    const text = String(path);
    const inMount = text === under || text.startsWith(under + '/');
    if (!fired && inMount) {
      fired = true;
      process.kill(pid, 'SIGKILL');
      const pause = new Int32Array(new SharedArrayBuffer(4));
      while (!gone()) Atomics.wait(pause, 0, 0, 10);
      process.stderr.write('[test] killed ' + pid + ' at ' + name + ' ' + text + '\\n');
    }
    const result = original.call(this, path, ...rest);
    // The kernel may answer a path it looked up lately from its cache, dead daemon or not.
    if (fired && inMount) result.catch((error) => process.stderr.write('[test] a read in the dead mount failed: ' + error.code + '\\n'));
    return result;
  };
}
syncBuiltinESMExports();
`;

/** `persist ARGS` on `machine`, its FUSE daemon killed at the first read in the mount after the mount's observation. */
async function persistKillingDaemon(machine: Machine, backend: string, args: string[], folder: string): Promise<RunResult> {
  const pids = pidsWithArg(backend, machine.mnt);
  expect(pids, `one ${backend} daemon serving ${machine.mnt}`).toHaveLength(1);
  const preload = join(folder, 'kill-daemon-on-read.mjs');
  await writeFile(preload, PRELOAD);
  const saved = { ...process.env };
  // runPersist hands the child this process's environment, read when it is called.
  Object.assign(process.env, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(), PERSIST_TEST_KILL_UNDER: machine.mnt, PERSIST_TEST_KILL_PID: String(pids[0]) });
  try {
    return machine.persist(args);
  } finally {
    for (const name of ['NODE_OPTIONS', 'PERSIST_TEST_KILL_UNDER', 'PERSIST_TEST_KILL_PID']) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
}

for (const backend of FUSE_BACKENDS) {
  describeE2E(`the ${backend} daemon killed while persist looks at the machine`, [backend], () => {
    const rig = e2eRig(() => startStrictS3Server());

    it('plan shows a conflict naming the dead mount for each resource whose read there failed, no internal error; the next plan remounts it', { timeout: 120_000 }, async () => {
      const bucket = `dies-plan-${backend}`;
      const { machine } = await durableMachine(rig.server, rig.sandbox, backend, bucket, '1s', 0);
      expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
      await writeFile(join(machine.state, 'changed.txt'), 'a change to push\n');

      const planned = await persistKillingDaemon(machine, backend, ['plan'], machine.root);
      expect(planned.stderr).toMatch(/\[test\] killed \d+ at /);
      expect(planned.output).not.toMatch(/internal error|ENOTCONN.*\n\s+at /);
      expect(pidsWithArg(backend, machine.mnt)).toEqual([]);
      // Each resource whose read in the mount failed: a conflict line that names the mount and says
      // what to do. (The kernel can answer every read of this plan from its cache, as it did once
      // for s3fs in CI; then this plan cannot tell, and the next one does.)
      const died = new RegExp(`cannot be looked into: the mount at ${machine.mnt} \\(mount\\.data\\) died while it was looked at \\((ENOTCONN|ECONNABORTED)`);
      if (/\[test\] a read in the dead mount failed: (ENOTCONN|ECONNABORTED)/.test(planned.stderr)) {
        expect(planned.stdout).toMatch(died);
        expect(planned.stdout).toContain('Run the command again: its plan finds mount.data dead and remounts it.');
        expect(planned.stdout).toMatch(/sync\.state/);
      } else {
        expect(planned.code, planned.output).toBe(0);
      }

      const next = await machine.persist(['plan']);
      expect(next.output).not.toMatch(/internal error/);
      expect(next.stdout).toMatch(/mount\.data.*remount/);
      expect(next.stdout).not.toMatch(died);
    });

    it('shutdown tries again, remounts and saves everything the agent wrote (exit 0), as when the daemon was dead before it started', { timeout: 150_000 }, async () => {
      const bucket = `dies-shutdown-${backend}`;
      const { machine } = await durableMachine(rig.server, rig.sandbox, backend, bucket, '1s', 0);
      expect((await machine.persist(['apply', '--auto-approve'])).code).toBe(0);
      const written = join(machine.ws, 'memory', 'written');
      await mkdir(written, { recursive: true });
      for (let i = 0; i < 300; i++) await writeFile(join(written, `note-${i}.md`), `written through the link ${i}\n`);
      await writeFile(join(machine.state, 'last-words.txt'), 'pushed by shutdown\n');

      const stopped = await persistKillingDaemon(machine, backend, ['shutdown', '--timeout', '60s'], machine.root);
      expect(stopped.stderr).toMatch(/\[test\] killed \d+ at /);
      expect(stopped.code, stopped.output).toBe(0);
      expect(stopped.output).not.toMatch(/internal error/);
      // The first round found the mount dying under it, the second remounted it and saved.
      expect(stopped.stdout).toMatch(/stopped by the store \([^)]*sync\.state[^)]*\): trying again/);
      expect(stopped.stdout).toMatch(/✔ mount\.data: remount: /);
      expect(stopped.stdout).toMatch(/✔ sync\.state: push: /);
      expect((await rig.server.getObject(bucket, 'state/last-words.txt'))?.toString()).toBe('pushed by shutdown\n');
      for (let i = 0; i < 300; i++) expect((await rig.server.getObject(bucket, `workspace/memory/written/note-${i}.md`))?.toString()).toBe(`written through the link ${i}\n`);
      expect(await rig.server.listObjects(bucket)).not.toContain('.persist-lease.json');
    });
  });
}
