// Two small promises of rollback and watch: a rollback to a generation that is not kept says so
// before it describes what it would do; a long watch does not pile up listeners round after round.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, sleep } from './helpers.js';

describe('rollback to a generation that is not kept', () => {
  it('fails at once naming the kept generations, without first saying what it would do', async () => {
    const f = makeFixture({ sync: true });
    await converge(f);
    writeFileSync(join(f.dir, 'state', 'app.db'), 'more rows\n');
    await converge(f);
    const result = await f.run(['rollback', 'sync.state', '--to', '99', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('persist: sync.state: generation 99 is not kept in the store (kept: 1, 2; persist history lists them)\n');
    expect(result.stdout).not.toContain('99');
    expect(readFileSync(join(f.dir, 'state', 'app.db'), 'utf8')).toBe('more rows\n');
  });
});

describe('a long watch', () => {
  it('runs 12 rounds (a listener left per round warns at the 11th) without a listener warning', async () => {
    const f = makeFixture({ sync: true });
    await converge(f);
    const watch = f.start(['watch', '--interval', '1s', '--auto-approve'], { timeoutMs: 60_000 });
    await watch.waitFor(/round 12\]/, 45_000);
    await sleep(100);
    watch.child.kill('SIGTERM');
    const done = await watch.done;
    expect(done.code).toBe(0);
    expect(done.stderr).not.toContain('MaxListenersExceededWarning');
  }, 60_000);
});
