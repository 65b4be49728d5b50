// The apply lock through the built CLI: a live holder makes apply fail at once naming its pid,
// --lock-timeout waits for it, a dead holder's lock is taken over, and two applies started together
// never interleave; holding it, apply removes what killed runs left half-written in the state folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { converge, makeFixture, snapshotTree, STACK_LINE, treeChanges, type Fixture } from './helpers.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function holder(seconds: number): ChildProcess {
  const child = spawn('sleep', [String(seconds)], { stdio: 'ignore' });
  children.push(child);
  return child;
}

function writeLock(f: Fixture, pid: number, command?: string): string {
  mkdirSync(f.stateDir, { recursive: true, mode: 0o700 });
  const path = join(f.stateDir, 'apply.lock');
  writeFileSync(path, `${JSON.stringify({ pid, startedAt: '2026-01-01T00:00:00.000Z', spec: f.spec, environment: 'default', ...(command ? { command } : {}) })}\n`);
  return path;
}

describe('the apply lock', () => {
  it('a live holder: apply fails at once naming its pid, and changes nothing', async () => {
    const f = makeFixture({ links: ['memory'] });
    const sleeper = holder(30);
    const lock = writeLock(f, sleeper.pid!);
    const before = snapshotTree(f.dir);
    const started = Date.now();
    const result = await f.run(['apply', '--auto-approve']);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `persist: another apply holds the lock ${lock}: pid ${sleeper.pid} (started 2026-01-01T00:00:00.000Z, environment "default"); wait for it to finish or pass --lock-timeout\n`,
    );
    expect(result.stderr).not.toMatch(STACK_LINE);
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('names the command holding it when that is not an apply (a verify, a clean)', async () => {
    const f = makeFixture({ links: ['memory'] });
    const sleeper = holder(30);
    const lock = writeLock(f, sleeper.pid!, 'verify');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `persist: persist verify holds the lock ${lock}: pid ${sleeper.pid} (started 2026-01-01T00:00:00.000Z, environment "default"); wait for it to finish or pass --lock-timeout\n`,
    );
  });

  it('rollback and detach, which have no --lock-timeout, do not tell to pass one', async () => {
    const f = makeFixture({ links: ['memory'], sync: true });
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    const sleeper = holder(30);
    const lock = writeLock(f, sleeper.pid!);
    for (const [command, args] of [['rollback', ['rollback', 'sync.state', '--to', '1', '--auto-approve']], ['detach', ['detach', '--auto-approve']]] as const) {
      const result = await f.run([...args]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`persist: another apply holds the lock ${lock}: pid ${sleeper.pid} (started 2026-01-01T00:00:00.000Z, environment "default"); wait for it to finish, then run this ${command} again\n`);
    }
  });

  it('holding the lock, apply removes the temporaries a killed run left in the state folder, and nothing else', async () => {
    const f = makeFixture({ links: ['memory'], sync: true });
    await converge(f);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid; // exited: a killed run's pid
    const left = [join(f.stateDir, 'syncs', `.state-0123456789.trust.json.persist-tmp-${dead}-0a1b2c3d`), join(f.stateDir, 'lineage', 'env', 'default', `.sync.state.json.persist-tmp-${dead}-deadbeef`)];
    const kept = [
      join(f.stateDir, 'syncs', `.state-0123456789.json.persist-tmp-${process.pid}-0a1b2c3d`), // a live process's write in progress
      join(f.stateDir, 'syncs', '.notes.persist-tmp-draft'), // not a name persist makes
      join(f.stateDir, 'mounts', `.cache.persist-tmp-${dead}-0a1b2c3d`), // a backend's folder: its own rules
    ];
    for (const path of [...left, ...kept]) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, '{"half":');
    }
    writeFileSync(join(f.dir, 'state', 'app.db'), 'more rows\n');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    for (const path of left) expect(existsSync(path), path).toBe(false);
    for (const path of kept) expect(existsSync(path), path).toBe(true);
  });

  it('--lock-timeout 2s waits for a holder that exits after 1s, then applies', async () => {
    const f = makeFixture({ links: ['memory'] });
    const sleeper = holder(1);
    writeLock(f, sleeper.pid!);
    const started = Date.now();
    const result = await f.run(['apply', '--auto-approve', '--lock-timeout', '2s']);
    const waited = Date.now() - started;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(waited).toBeGreaterThanOrEqual(800);
    expect(result.stdout).toContain('Apply complete: 2 applied, 0 failed, 0 skipped.');
    expect(readdirSync(f.stateDir).filter((name) => name.includes('lock'))).toEqual([]); // released, and no stale copy left beside it
  });

  it('takes over a lock left by a dead process', async () => {
    const f = makeFixture({ links: ['memory'] });
    const gone = spawn('true');
    await new Promise((resolve) => gone.on('exit', resolve));
    writeLock(f, gone.pid!);
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Apply complete: 2 applied, 0 failed, 0 skipped.');
    expect(existsSync(join(f.stateDir, 'apply.lock'))).toBe(false);
    expect(readdirSync(f.stateDir).filter((name) => name.includes('lock'))).toEqual([]);
  });

  it('an action found already done while waiting for the lock does not block what depends on it', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    writeLock(f, holder(2).pid!);
    const run = f.start(['apply', '--auto-approve', '--lock-timeout', '10s']);
    await run.waitFor('1. + mount.data  mount');
    mkdirSync(f.bucket); // someone else creates the bucket folder while this apply waits
    const result = await run.done;
    expect(result.stdout).toContain('↓ 1. + mount.data  mount: already as the spec wants it (nothing to do)');
    expect(result.stdout).toContain('✔ 2. + link.memory  create: created the link');
    expect(result.stdout).toContain('Apply complete: 2 applied, 0 failed, 1 skipped.');
    expect(result.code).toBe(0);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('rejects a malformed --lock-timeout in one line', async () => {
    const f = makeFixture({ links: ['memory'] });
    const result = await f.run(['apply', '--auto-approve', '--lock-timeout', 'soon']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('persist: --lock-timeout: "soon" is not a duration (expected a number with a unit: 500ms, 30s, 5m, 1h)\n');
  });

  it('two applies started together never interleave: one does the work, the other finds it done', async () => {
    const names = Array.from({ length: 60 }, (_, i) => `l${i}`);
    const f = makeFixture({ links: names, sync: true });
    const args = ['apply', '--auto-approve', '--lock-timeout', '20s'];
    const [a, b] = await Promise.all([f.run(args), f.run(args)]);
    for (const result of [a, b]) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    }
    const applied = (text: string) => Number(/Apply complete: (\d+) applied, 0 failed, (\d+) skipped\./.exec(text)?.[1]);
    const counts = [applied(a.stdout), applied(b.stdout)].sort((x, y) => x - y);
    // 1 mount + 60 links + 1 push, all by one process; the other applied nothing.
    expect(counts).toEqual([0, 62]);
    const idle = applied(a.stdout) === 0 ? a.stdout : b.stdout;
    for (const line of idle.split('\n').filter((l) => /^[✔✖↓] /.test(l))) expect(line).toMatch(/^↓ .*: already as the spec wants it/);
    expect(readFileSync(join(f.bucket, 'state', 'app.db'), 'utf8')).toBe('rows\n');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
    expect(existsSync(join(f.stateDir, 'apply.lock'))).toBe(false);
  });
});
