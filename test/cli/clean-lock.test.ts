// `persist clean` never removes what a running write of persist is still making: it holds this
// machine's apply lock from its listing to its last removal (an apply running refuses it at once),
// and leaves alone the partial files of a bucket whose lease another machine holds. The QA case:
// clean in a loop while an apply adopts a big folder removed the adopt's in-flight partial files and
// its fresh conflict copies, and the apply failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { converge, makeFixture, sleep, until, type CliResult } from './helpers.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('clean and the writes of persist', () => {
  it('refuses while an apply of this machine holds the lock, and removes nothing', async () => {
    const f = makeFixture({ links: ['memory'], sync: true });
    await converge(f);
    const partial = join(f.bucket, 'state', '.app.db.persist-tmp-0123456789ab');
    writeFileSync(partial, 'being written\n');
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    const lock = join(f.stateDir, 'apply.lock');
    writeFileSync(lock, `${JSON.stringify({ pid: sleeper.pid, startedAt: '2026-01-01T00:00:00.000Z', spec: f.spec, environment: 'default' })}\n`);
    const result = await f.run(['clean', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`persist: another apply holds the lock ${lock}: pid ${sleeper.pid} (started 2026-01-01T00:00:00.000Z, environment "default"); wait for it to finish, then run this clean again\n`);
    expect(existsSync(partial)).toBe(true);
    // Once the holder is gone, clean takes the lock and removes it.
    sleeper.kill('SIGKILL');
    await new Promise((resolve) => sleeper.once('exit', resolve));
    const cleaned = await f.run(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toContain('Clean complete: removed 1 file.\n');
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(lock)).toBe(false);
  });

  it('run in a loop while an apply adopts a big folder: the apply succeeds and no file of its adopt is removed', { timeout: 120_000 }, async () => {
    const f = makeFixture({ links: ['memory'] });
    await converge(f);
    // The link becomes a real folder again, with big files; the mount holds other versions of them (conflict copies).
    const link = f.link('memory');
    unlinkSync(link);
    mkdirSync(link);
    const sums = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const data = randomBytes(4_000_000);
      writeFileSync(join(link, `big${i}.bin`), data);
      sums.set(`big${i}.bin`, sha(data));
      // The mount holds another version of each: adopt writes the local one beside it as a conflict copy (partial files first).
      writeFileSync(join(f.target('memory'), `big${i}.bin`), randomBytes(100));
    }
    const apply = f.start(['apply', '--auto-approve'], { timeoutMs: 100_000 });
    const cleans: CliResult[] = [];
    let running = true;
    void apply.done.then(() => (running = false));
    // Started once the apply holds the lock: a clean holding it first would make the apply fail at once (--lock-timeout 0).
    const lock = join(f.stateDir, 'apply.lock');
    await until(() => !running || (existsSync(lock) && readFileSync(lock, 'utf8').includes(`"pid":${apply.child.pid}`)), 'the apply holds the lock', 60_000);
    while (running) {
      cleans.push(await f.run(['clean', '--auto-approve']));
      await sleep(50);
    }
    const applied = await apply.done;
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    expect(cleans.length).toBeGreaterThan(0);
    expect(cleans[0]!.stderr).toMatch(/another apply holds the lock .*; wait for it to finish, then run this clean again/);
    // Each clean either ran before or after the apply's lock, or refused naming it; none removed a file of the adopt.
    for (const clean of cleans) {
      if (clean.code !== 0) expect(clean.stderr).toMatch(/another apply holds the lock .*; wait for it to finish, then run this clean again/);
    }
    expect(applied.stdout).toContain('Apply complete: 1 applied, 0 failed, 0 skipped.');
    // Every local file is in the mount whole, as a conflict copy (unless a clean after the apply removed it, as it may).
    const inMount = readdirSync(f.target('memory'));
    for (const [name, sum] of sums) {
      const copy = inMount.find((entry) => entry.startsWith(`${name}.persist-conflict-`));
      if (copy) expect(sha(readFileSync(join(f.target('memory'), copy))), copy).toBe(sum);
    }
    expect(inMount.filter((name) => name.includes('.persist-partial-'))).toEqual([]);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('leaves alone the leftovers of a bucket whose lease another machine holds; removes them once it expired', async () => {
    const f = makeFixture({ links: ['memory'], sync: true });
    await converge(f);
    const partial = join(f.bucket, 'state', '.app.db.persist-tmp-0123456789ab');
    const adoptPartial = join(f.target('memory'), '.b.md.persist-partial-4f2a00c0ffee');
    for (const path of [partial, adoptPartial]) writeFileSync(path, 'being written by the other machine\n');
    // Another machine holds the bucket's lease (a `local` bucket's lease is this file), renewed a moment ago.
    const lease = join(f.bucket, '.persist-lease.json');
    const body = (expiresAt: Date) => `${JSON.stringify({ machine: 'b'.repeat(32), host: 'other-box', pid: 4242, acquiredAt: new Date().toISOString(), renewedAt: new Date().toISOString(), expiresAt: expiresAt.toISOString() })}\n`;
    writeFileSync(lease, body(new Date(Date.now() + 60_000)));
    const cleaned = await f.run(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toContain(`Left alone: 2 leftovers in bucket data: its lease is held by machine ${'b'.repeat(32)} (host other-box, pid 4242`);
    expect(cleaned.stdout).toContain('and another machine may be writing them right now. Run clean on the machine that holds the lease');
    expect(cleaned.stdout).toContain(`  ${partial}  (partial file)`);
    expect(cleaned.stdout).toContain(`  ${adoptPartial}  (partial file)`);
    expect(cleaned.stdout).toContain('Nothing removed.\n');
    for (const path of [partial, adoptPartial]) expect(existsSync(path)).toBe(true);
    // Its lease expired (that container stopped): the leftovers are persist's to remove.
    writeFileSync(lease, body(new Date(Date.now() - 1_000)));
    const later = await f.run(['clean', '--auto-approve']);
    expect(later.code, later.stderr).toBe(0);
    expect(later.stdout).toContain('Clean complete: removed 2 files.\n');
    for (const path of [partial, adoptPartial]) expect(existsSync(path)).toBe(false);
  });
});
