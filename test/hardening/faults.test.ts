// Faults during apply, with the built CLI as a real process: a bucket folder that fills up in the
// middle of an adopt, symlink loops inside folders being adopted and synced, and a workspace that
// cannot be written. Each run ends with a clear error (or succeeds), and sha256 manifests taken
// before and after prove that nothing was lost; where the fault goes away, the next apply finishes.
// Mounting a tmpfs or a read-only bind mount needs root; those cases are skipped otherwise.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { filesOf, runPersist, STACK_FRAME, tempDir, treeManifest, type RunResult } from './helpers.js';

const IS_ROOT = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function spec(extra = ''): string {
  return `version: 1
workspace: ./ws
buckets:
  data:
    name: faults
    mount: { backend: local, path: ./bucket }
links:
  memory: workspace/memory
${extra}`;
}

function setUp(extra = ''): { dir: string; memory: string; target: string; env: Record<string, string> } {
  const dir = tempDir();
  writeFileSync(join(dir, 'persist.yaml'), spec(extra));
  mkdirSync(join(dir, 'bucket'), { recursive: true });
  const memory = join(dir, 'ws', 'memory');
  mkdirSync(memory, { recursive: true });
  return { dir, memory, target: join(dir, 'bucket', 'workspace', 'memory'), env: { PERSIST_STATE_DIR: join(dir, 'persist-state') } };
}

/** Some notes, a few sub-folders and one large file. */
function writeData(folder: string, largeBytes: number): void {
  for (let i = 0; i < 20; i++) writeFileSync(join(folder, `note-${i}.md`), `note ${i}\n${randomBytes(2048).toString('hex')}\n`);
  mkdirSync(join(folder, 'deep', 'er'), { recursive: true });
  writeFileSync(join(folder, 'deep', 'er', 'leaf.txt'), 'leaf\n');
  writeFileSync(join(folder, 'large.bin'), randomBytes(largeBytes));
}

function mount(args: string[], undo: string[]): void {
  execFileSync('mount', args);
  cleanups.push(() => execFileSync('umount', undo));
}

function apply(dir: string, env: Record<string, string>): Promise<RunResult> {
  return runPersist(['apply', '--auto-approve'], { cwd: dir, env, timeoutMs: 60_000 });
}

/** A failed apply: exit 1, the failure named on stdout, no stack trace anywhere. */
function expectFailure(result: RunResult, message: RegExp): void {
  expect(result.code, result.stdout + result.stderr).toBe(1);
  expect(result.stdout).toMatch(/^failed: link\.memory: /m);
  expect(result.stdout).toMatch(message);
  expect(result.stdout).toMatch(/Apply complete: \d+ applied, 1 failed/);
  expect(result.stdout + result.stderr).not.toMatch(STACK_FRAME);
}

async function expectConverged(dir: string, env: Record<string, string>): Promise<void> {
  const plan = await runPersist(['plan', '--detailed-exitcode'], { cwd: dir, env });
  expect(plan.stdout).toContain('No changes. The machine matches the spec.');
  expect(plan.code).toBe(0);
}

/** The backups adopt kept in the workspace (the original folders, moved aside). */
function backups(dir: string): string[] {
  const folder = join(dir, 'ws', '.persist-backups');
  return existsSync(folder) ? readdirSync(folder).filter((name) => name.startsWith('memory-')).map((name) => join(folder, name)) : [];
}

describe.skipIf(!IS_ROOT)('the bucket folder fills up during an adopt', () => {
  it('stops with a clear error, loses nothing, and finishes once there is room', async () => {
    const { dir, memory, target, env } = setUp();
    writeData(memory, 3 * 1024 * 1024);
    const before = treeManifest(memory);
    mount(['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(dir, 'bucket')], [join(dir, 'bucket')]);

    const full = await apply(dir, env);
    expectFailure(full, /ENOSPC|no space left/i);
    // The original is untouched where it was; the link was not made.
    expect(lstatSync(memory).isDirectory()).toBe(true);
    expect(treeManifest(memory)).toEqual(before);

    // The plan says the adopt is to be resumed, and nothing else is lost on the way.
    const plan = await runPersist(['plan'], { cwd: dir, env });
    expect(plan.stdout).toMatch(/link\.memory {2}adopt\n {3}resume an interrupted adopt/);

    execFileSync('mount', ['-o', 'remount,size=32m', join(dir, 'bucket')]);
    const resumed = await apply(dir, env);
    expect(resumed.code, resumed.stdout).toBe(0);
    expect(readlinkSync(memory)).toBe(target);
    expect(filesOf(treeManifest(target))).toEqual(filesOf(before));
    expect(backups(dir).map((backup) => treeManifest(backup))).toEqual([before]);
    // No temporary copies are left in the bucket.
    expect(Object.keys(treeManifest(target)).filter((name) => name.includes('.persist-partial-'))).toEqual([]);
    await expectConverged(dir, env);
  });
});

describe('symlink loops', () => {
  it('inside a folder being adopted: copied as links, never followed', async () => {
    const { dir, memory, target, env } = setUp();
    writeData(memory, 64 * 1024);
    symlinkSync('self', join(memory, 'self')); // a link to itself
    symlinkSync('pong', join(memory, 'ping')); // two links to each other
    symlinkSync('ping', join(memory, 'pong'));
    symlinkSync('..', join(memory, 'deep', 'up')); // a folder cycle
    symlinkSync(memory, join(memory, 'deep', 'er', 'root')); // an absolute cycle
    const before = treeManifest(memory);

    const result = await apply(dir, env);
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/adopted 22 files/);
    expect(readlinkSync(memory)).toBe(target);
    // Files and the links themselves, byte for byte and target for target.
    expect(treeManifest(target)).toEqual(before);
    expect(backups(dir).map((backup) => treeManifest(backup))).toEqual([before]);
    await expectConverged(dir, env);
  });

  it('inside a folder being synced: skipped with a warning, the files pushed', async () => {
    const { dir, env } = setUp('syncs:\n  state: { from: ./state, to: state }\n');
    const state = join(dir, 'state');
    mkdirSync(join(state, 'sub'), { recursive: true });
    writeFileSync(join(state, 'db.sqlite'), randomBytes(4096));
    writeFileSync(join(state, 'sub', 'pairing.json'), '{}\n');
    symlinkSync('loop', join(state, 'loop'));
    symlinkSync('..', join(state, 'sub', 'up'));
    const before = treeManifest(state);

    const plan = await runPersist(['plan'], { cwd: dir, env });
    expect(plan.stdout).toMatch(/warning: 2 symlinks? or special files not synced \(only regular files are\): loop, sub\/up/);
    const result = await apply(dir, env);
    expect(result.code, result.stdout).toBe(0);
    expect(treeManifest(state)).toEqual(before);
    const mirror = treeManifest(join(dir, 'bucket', 'state'), (name) => name === '.persist-sync.json' || name === '.persist-sync');
    expect(filesOf(mirror)).toEqual(filesOf(before));
    await expectConverged(dir, env);
  });
});

describe.skipIf(!IS_ROOT)('a workspace that cannot be written', () => {
  it('read-only (a read-only bind mount): nothing starts, nothing is lost, and it works once writable', async () => {
    const { dir, memory, target, env } = setUp();
    writeData(memory, 256 * 1024);
    const before = treeManifest(memory);
    const ws = join(dir, 'ws');
    mount(['--bind', ws, ws], [ws]);
    execFileSync('mount', ['-o', 'remount,ro,bind', ws]);

    const result = await apply(dir, env);
    expectFailure(result, /EROFS|read-only file system/i);
    expect(treeManifest(memory)).toEqual(before);

    cleanups.pop()!(); // writable again
    const retried = await apply(dir, env);
    expect(retried.code, retried.stdout).toBe(0);
    expect(readlinkSync(memory)).toBe(target);
    expect(filesOf(treeManifest(target))).toEqual(filesOf(before));
    await expectConverged(dir, env);
  });

  it('an immutable folder (chattr +i) cannot be moved aside: the copy stays, the original too', async () => {
    const { dir, memory, target, env } = setUp();
    writeData(memory, 256 * 1024);
    const before = treeManifest(memory);
    execFileSync('chattr', ['+i', memory]);
    cleanups.push(() => execFileSync('chattr', ['-i', memory]));

    const result = await apply(dir, env);
    expectFailure(result, /cannot move .*memory to .*: .*operation not permitted.*; its content is already copied into .*, nothing is lost/i);
    expect(lstatSync(memory).isDirectory()).toBe(true);
    expect(treeManifest(memory)).toEqual(before);
    expect(filesOf(treeManifest(target))).toEqual(filesOf(before));

    cleanups.pop()!(); // chattr -i
    const resumed = await apply(dir, env);
    expect(resumed.code, resumed.stdout).toBe(0);
    expect(resumed.stdout).toContain('(resumed)');
    expect(readlinkSync(memory)).toBe(target);
    expect(filesOf(treeManifest(target))).toEqual(filesOf(before));
    expect(backups(dir).map((backup) => treeManifest(backup))).toEqual([before]);
    await expectConverged(dir, env);
  });

  it('an immutable workspace folder: the link cannot be created, a clear error, and the bucket is untouched', async () => {
    const { dir, memory, env } = setUp();
    // memory is missing: the link is created (not adopted); the workspace refuses new entries.
    execFileSync('rmdir', [memory]);
    writeFileSync(join(dir, 'ws', 'keep.txt'), 'kept\n');
    const before = treeManifest(join(dir, 'ws'));
    execFileSync('chattr', ['+i', join(dir, 'ws')]);
    cleanups.push(() => execFileSync('chattr', ['-i', join(dir, 'ws')]));

    const result = await apply(dir, env);
    expectFailure(result, /EPERM|operation not permitted/i);
    expect(treeManifest(join(dir, 'ws'))).toEqual(before);
  });
});
