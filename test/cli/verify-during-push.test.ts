// `persist verify` run while a push is under way reports no false damage: a push replaces files
// first and its manifest last, and verify called every file the push had already replaced
// "damaged: content differs from the manifest" (QA, from the pushing machine and from another
// one). On the pushing machine verify now holds the apply lock (it waits for a running apply); on
// another machine it checks what mismatches again once the manifest changed, while the pusher
// holds the bucket's lease. True damage is still reported, and recorded for repair.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { converge, makeFixture, until, type CliResult, type Fixture } from './helpers.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

const FILES = 30;

/** A converged sync of FILES big files, then every one of them rewritten: the next apply pushes them all. */
async function bigPushPending(options: { leaseTtl?: string } = {}): Promise<Fixture> {
  const f = makeFixture({ sync: true, ...options });
  for (let i = 0; i < FILES; i++) writeFileSync(join(f.dir, 'state', `big${i}.bin`), randomBytes(4_000_000));
  await converge(f);
  for (let i = 0; i < FILES; i++) writeFileSync(join(f.dir, 'state', `big${i}.bin`), randomBytes(4_000_000));
  return f;
}

/** Runs `verify --hash` again and again while the apply runs (from the moment it holds the lock); every result. */
async function verifyDuringApply(f: Fixture, env: Record<string, string> = {}): Promise<{ verifies: CliResult[]; applied: CliResult }> {
  const apply = f.start(['apply', '--auto-approve'], { timeoutMs: 120_000 });
  const lock = join(f.stateDir, 'apply.lock');
  let running = true;
  void apply.done.then(() => (running = false));
  // Started once the apply holds the lock: a verify holding it first would make the apply fail at once (--lock-timeout 0).
  await until(() => !running || (existsSync(lock) && readFileSync(lock, 'utf8').includes(`"pid":${apply.child.pid}`)), 'the apply holds the lock', 60_000);
  const verifies: CliResult[] = [];
  while (running) verifies.push(await f.run(['verify', '--hash'], { env, timeoutMs: 120_000 }));
  return { verifies, applied: await apply.done };
}

describe('verify during a push', () => {
  it('on the pushing machine: verify waits for the apply, then finds everything whole', { timeout: 180_000 }, async () => {
    const f = await bigPushPending();
    const { verifies, applied } = await verifyDuringApply(f);
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    expect(verifies.length).toBeGreaterThan(0);
    for (const verify of verifies) {
      expect(verify.stdout, verify.stderr).toContain('Verified: everything stored matches its manifest or header.');
      expect(verify.code).toBe(0);
    }
    // The first one started while the apply held the lock: it said why it waited.
    expect(verifies[0]!.stderr).toContain('persist: an apply (or watch round, shutdown) of this machine is running; verify waits up to 60 s for it to finish');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('on another machine: what the push replaced is checked again against its new manifest, not called damaged', { timeout: 180_000 }, async () => {
    const f = await bigPushPending();
    const other = { PERSIST_STATE_DIR: join(f.dir, '.state-other') };
    const { verifies, applied } = await verifyDuringApply(f, other);
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    expect(verifies.length).toBeGreaterThan(0);
    for (const verify of verifies) {
      expect(verify.stdout, verify.stderr).toContain('Verified: everything stored matches its manifest or header.');
      expect(verify.code).toBe(0);
    }
    // Nothing recorded for repair on either machine.
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('waits for an apply lock a live process holds, and goes on once it is gone', { timeout: 60_000 }, async () => {
    const f = makeFixture({ sync: true });
    await converge(f);
    const sleeper = spawn('sleep', ['2'], { stdio: 'ignore' });
    children.push(sleeper);
    writeFileSync(join(f.stateDir, 'apply.lock'), `${JSON.stringify({ pid: sleeper.pid, startedAt: new Date().toISOString(), spec: f.spec, environment: 'default' })}\n`);
    const started = Date.now();
    const result = await f.run(['verify']);
    expect(result.code, result.stdout).toBe(0);
    expect(Date.now() - started).toBeGreaterThan(1_000);
    expect(result.stderr).toBe('persist: an apply (or watch round, shutdown) of this machine is running; verify waits up to 60 s for it to finish, so as not to check a push half done\n');
    expect(existsSync(join(f.stateDir, 'apply.lock'))).toBe(false);
  });

  it('true damage is still reported, on this machine and on another one, and recorded for repair', { timeout: 60_000 }, async () => {
    const f = makeFixture({ sync: true, leaseTtl: '2s' });
    writeFileSync(join(f.dir, 'state', 'notes.md'), 'some notes\n');
    writeFileSync(join(f.dir, 'state', 'other.md'), 'other notes\n');
    await converge(f);
    truncateSync(join(f.bucket, 'state', 'notes.md'), 3);
    writeFileSync(join(f.bucket, 'state', 'other.md'), 'OTHER NOTES\n'); // same size: only the hash tells
    // Another machine, while this one's lease is still live (2 s): it waits for a changed manifest no longer than the lease lives.
    const other = await f.run(['verify', '--hash'], { env: { PERSIST_STATE_DIR: join(f.dir, '.state-other') } });
    expect(other.code).toBe(1);
    expect(other.stdout).toContain('FAIL sync.state: 3 stored files checked (size and content), 2 missing or damaged');
    expect(other.stdout).toContain('     notes.md: damaged: 3 bytes, the manifest says 11');
    expect(other.stdout).toContain('     other.md: damaged: content differs from the manifest (sha256)');
    const mine = await f.run(['verify', '--hash']);
    expect(mine.code).toBe(1);
    expect(mine.stdout).toContain('     notes.md: damaged: 3 bytes, the manifest says 11');
    expect(mine.stdout).toContain('     other.md: damaged: content differs from the manifest (sha256)');
    expect(mine.stdout).toContain('1 resource with problems; the next apply pushes the missing or damaged sync files again (plan shows "repair": sync.state).');
    const plan = await f.run(['plan']);
    expect(plan.stdout).toMatch(/~ sync\.state {2}push/);
    expect(plan.stdout).toContain('repair');
    await converge(f);
    expect((await f.run(['verify', '--hash'])).code).toBe(0);
  });

  it('true damage while another machine holds the lease: verify waits a bounded time for its push, then reports it and says why it waited', { timeout: 90_000 }, async () => {
    const f = makeFixture({ sync: true });
    await converge(f);
    truncateSync(join(f.bucket, 'state', 'app.db'), 1);
    const now = new Date();
    writeFileSync(join(f.bucket, '.persist-lease.json'), `${JSON.stringify({ machine: 'c'.repeat(32), host: 'other-box', pid: 4242, acquiredAt: now.toISOString(), renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 120_000).toISOString() })}\n`);
    const started = Date.now();
    const result = await f.run(['verify'], { timeoutMs: 80_000 });
    const took = Date.now() - started;
    expect(result.code).toBe(1);
    expect(took).toBeGreaterThan(25_000);
    expect(took).toBeLessThan(60_000);
    expect(result.stdout).toContain('     app.db: damaged: 1 bytes, the manifest says 5');
    expect(result.stdout).toContain(`     its lease is held by machine ${'c'.repeat(32)} (host other-box, pid 4242`);
    expect(result.stdout).toContain('that machine may still be pushing, and a push replaces files before its manifest; run verify again once it is done');
    expect(result.stdout).toContain('the next apply pushes the missing or damaged sync files again (plan shows "repair": sync.state).');
  });

  it('a mirror without a manifest: verify says it could not check it, and promises no repair', async () => {
    const f = makeFixture({ sync: true });
    mkdirSync(join(f.bucket, 'state'), { recursive: true });
    writeFileSync(join(f.bucket, 'state', 'x.txt'), 'put there by hand\n');
    const result = await f.run(['verify']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAIL sync.state: the mirror has no manifest: nothing to check it against');
    expect(result.stdout).toContain('1 resource with problems; nothing was recorded for repair (verify records only what it finds missing or damaged).');
    expect(result.stdout).not.toContain('the next apply pushes');
  });
});
