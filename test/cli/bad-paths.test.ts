// Bad paths in the spec, through the built CLI on the `local` backend: a sync `from:` that is a
// symbolic link loop, a workspace (the links' folder) that is a loop or that the user may not
// read, a `local` mount path the user may not read. Each must become a conflict on its own
// resource, naming the path and the trouble in words, with no internal error and no stack trace;
// exit 1; and every other resource is planned, applied and saved by shutdown. As root the
// unreadable cases run the CLI as `nobody` (setpriv), since root reads anything.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPersist, STACK_FRAME, tempDir, type RunResult } from '../hardening/helpers.js';

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;
const LOOP_WORDS = 'too many levels of symbolic links, as when a link on the way leads back to itself (ELOOP)';

function fixture(spec: string, { asNobody = false } = {}) {
  const dir = tempDir('persist-bad-paths-');
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'persist.yaml'), spec);
  for (const folder of ['home', 'state', 'good', 'inbad']) mkdirSync(join(dir, folder));
  writeFileSync(join(dir, 'good', 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'inbad', 'i.txt'), 'i\n');
  const run = (...args: string[]): Promise<RunResult> =>
    runPersist(args, {
      cwd: dir,
      env: { PERSIST_STATE_DIR: join(dir, 'state'), HOME: join(dir, 'home') },
      ...(asNobody && IS_ROOT ? { wrapper: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] } : {}),
    });
  return { dir, run, chownToNobody: () => IS_ROOT && execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]) };
}

/** A clear message: no internal error, no stack trace. */
function clean(result: RunResult): void {
  expect(result.stderr).not.toContain('internal error');
  expect(result.stdout + result.stderr).not.toMatch(STACK_FRAME);
}

describe('a bad path stops only its own resource', () => {
  it('a sync `from:` that is a symbolic link loop: plan, apply and shutdown name it and handle the healthy sync', async () => {
    const { dir, run } = fixture(`version: 1
buckets:
  data:
    name: abc
    mount: { backend: local, path: ./bucket }
syncs:
  good: { from: ./good, to: good }
  loop: { from: ./loop, to: loop }
`);
    symlinkSync('loop', join(dir, 'loop'));
    const loopConflict = `cannot be looked into: ${join(dir, 'loop')}: ${LOOP_WORDS}`;

    const plan = await run('plan');
    clean(plan);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/! sync\.loop {2}conflict/);
    expect(plan.stdout).toContain(loopConflict);
    expect(plan.stdout).toContain(`fix: Make every symbolic link on the way to ${join(dir, 'loop')} lead to a real file or folder`);
    expect(plan.stdout).toMatch(/~ sync\.good {2}push/);

    const apply = await run('apply', '--auto-approve');
    clean(apply);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toMatch(/sync\.good {2}push: copied 1 file/);
    expect(apply.stdout).toContain(`sync.loop: refused: ${loopConflict}.`);
    expect(readFileSync(join(dir, 'bucket', 'good', 'a.txt'), 'utf8')).toBe('a\n');

    const status = await run('status');
    clean(status);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`sync.loop  conflict: ${loopConflict}`);

    writeFileSync(join(dir, 'good', 'b.txt'), 'b\n');
    const shutdown = await run('shutdown', '--timeout', '30s');
    clean(shutdown);
    expect(shutdown.code).toBe(1);
    expect(shutdown.stdout).toContain(`sync.loop: not saved: ${loopConflict}.`);
    expect(shutdown.stdout).toMatch(/Shutdown failed after [\d.]+ m?s; not saved: sync\.loop$/m);
    expect(readFileSync(join(dir, 'bucket', 'good', 'b.txt'), 'utf8')).toBe('b\n');
  });

  it('a workspace that is a symbolic link loop: the link in it is a conflict, the sync is pushed', async () => {
    const { dir, run } = fixture(`version: 1
workspace: ./wsl
buckets:
  data:
    name: abc
    mount: { backend: local, path: ./bucket }
links:
  m: ws/m
syncs:
  good: { from: ./good, to: good }
`);
    symlinkSync('wsl', join(dir, 'wsl'));
    const apply = await run('apply', '--auto-approve');
    clean(apply);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain(`link.m: refused: cannot be looked into: ${join(dir, 'wsl', 'm')}: ${LOOP_WORDS}.`);
    expect(apply.stdout).toMatch(/Apply complete: 2 applied, 1 failed, 0 skipped\./);
    expect(readFileSync(join(dir, 'bucket', 'good', 'a.txt'), 'utf8')).toBe('a\n');
  });

  it('a local mount path that is a symbolic link loop: shutdown saves the other bucket and ends without an internal error', async () => {
    const { dir, run } = fixture(`version: 1
buckets:
  data:
    name: abc
    mount: { backend: local, path: ./bucket }
  other:
    name: oth
    mount: { backend: local, path: ./other }
syncs:
  good: { from: ./good, to: good, bucket: other }
`);
    symlinkSync('bucket', join(dir, 'bucket'));
    const shutdown = await run('shutdown', '--timeout', '30s');
    clean(shutdown);
    expect(shutdown.stdout).toMatch(/sync\.good: push: copied 1 file/);
    expect(shutdown.code).toBe(0);
    expect(readFileSync(join(dir, 'other', 'good', 'a.txt'), 'utf8')).toBe('a\n');
  });

  it('a workspace, and then a local mount path, the user may not read: conflicts naming them; the rest is applied and saved', async () => {
    const { dir, run, chownToNobody } = fixture(
      `version: 1
workspace: ./ws
buckets:
  data:
    name: abc
    mount: { backend: local, path: ./bucket }
  other:
    name: oth
    mount: { backend: local, path: ./other }
links:
  m: { path: ws/m, bucket: data }
syncs:
  good: { from: ./good, to: good, bucket: other }
  inbad: { from: ./inbad, to: inbad, bucket: data }
`,
      { asNobody: true },
    );
    mkdirSync(join(dir, 'ws'));
    chownToNobody();
    const first = await run('apply', '--auto-approve');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);

    // The workspace: its link is a conflict; the new file of the healthy sync is pushed.
    chmodSync(join(dir, 'ws'), 0o000);
    writeFileSync(join(dir, 'good', 'b.txt'), 'b\n');
    const apply = await run('apply', '--auto-approve');
    chmodSync(join(dir, 'ws'), 0o755);
    clean(apply);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain(`link.m  conflict\n   cannot be looked into: ${join(dir, 'ws', 'm')}: permission denied (EACCES)`);
    expect(apply.stdout).toContain(`fix: Let the user persist runs as read ${join(dir, 'ws', 'm')} and search every folder above it`);
    expect(apply.stdout).toMatch(/sync\.good {2}push: copied 1 file/);
    expect(existsSync(join(dir, 'other', 'good', 'b.txt'))).toBe(true);

    // The mount path of bucket data: its mount and everything in that bucket stop, bucket other goes on.
    chmodSync(join(dir, 'bucket'), 0o000);
    writeFileSync(join(dir, 'good', 'c.txt'), 'c\n');
    writeFileSync(join(dir, 'inbad', 'j.txt'), 'j\n');
    const bad = `${join(dir, 'bucket')}: permission denied (EACCES)`;
    try {
      const plan = await run('plan');
      clean(plan);
      expect(plan.code).toBe(1);
      expect(plan.stdout).toContain(`! mount.data  conflict\n   cannot be looked into: ${bad}`);
      expect(plan.stdout).toContain(`! sync.inbad  conflict\n   cannot be looked into while mount.data cannot: ${bad}`);
      expect(plan.stdout).toMatch(/~ sync\.good {2}push/);

      const status = await run('status');
      clean(status);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain(`mount.data  conflict: cannot be looked into: ${bad}`);

      const started = Date.now();
      const shutdown = await run('shutdown', '--timeout', '30s');
      clean(shutdown);
      expect(shutdown.code).toBe(1);
      expect(shutdown.stdout).toContain(`sync.inbad: not saved: cannot be looked into while mount.data cannot: ${bad}.`);
      expect(shutdown.stdout).toMatch(/Shutdown failed after [\d.]+ m?s; not saved: sync\.inbad$/m);
      // Said at once: nothing passing to wait for.
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      chmodSync(join(dir, 'bucket'), 0o755);
    }
    expect(readFileSync(join(dir, 'other', 'good', 'c.txt'), 'utf8')).toBe('c\n');
    expect(existsSync(join(dir, 'bucket', 'inbad', 'j.txt'))).toBe(false);
  });
});
