// `persist watch --auto-approve` over many rounds, through the built CLI on the `local` backend:
// a resource that keeps failing backs off alone (tried again after 1, 2, 4, 8 rounds) while another
// sync gets its push every round; every --verify-every rounds the size check finds what went
// missing in the store and the same round pushes it again; and watch holds the machine's lease
// (renewed while idle, kept when watch stops, released by shutdown), so another machine waits.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { converge, makeFixture, sleep, until } from './helpers.js';

/** The round number and text of every stamped line. */
function rounds(stdout: string): { round: number; text: string }[] {
  return [...stdout.matchAll(/^\[[^\]]* round (\d+)\] (.*)$/gm)].map((m) => ({ round: Number(m[1]), text: m[2]! }));
}

interface LeaseFile {
  machine: string;
  renewedAt: string;
  expiresAt: string;
}

const isRoot = process.getuid?.() === 0;

describe('persist watch over many rounds', () => {
  it.skipIf(!isRoot)('a sync that keeps failing is retried after 1, 2, 4 and 8 rounds while another sync gets its push every round', async () => {
    // sync.bad's mirror is a read-only tmpfs inside the bucket: every push of it fails (EROFS).
    const f = makeFixture({ sync: true, extra: ['  bad:', '    from: ./bad', '    to: bad'].join('\n') });
    mkdirSync(join(f.dir, 'bad'));
    writeFileSync(join(f.dir, 'bad', 'never-saved.txt'), 'stays local\n');
    const readOnly = join(f.bucket, 'bad');
    mkdirSync(readOnly, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
    onTestFinished(() => void execFileSync('umount', ['-l', readOnly]));

    // The agent adds a file to ./state every 200 ms: every round has something to push.
    let tick = 0;
    const agent = setInterval(() => writeFileSync(join(f.dir, 'state', `tick-${tick++}.txt`), `${tick}\n`), 200);
    onTestFinished(() => clearInterval(agent));
    const run = f.start(['watch', '--interval', '1s', '--auto-approve'], { timeoutMs: 90_000 });
    await run.waitFor((stdout) => rounds(stdout).some((line) => line.round >= 16), 60_000);
    run.child.kill('SIGTERM');
    const result = await run.done;
    clearInterval(agent);
    expect(result.code, result.stdout).toBe(0);

    const lines = rounds(result.stdout).filter((line) => line.round <= 15);
    const failedAt = lines.filter((line) => /; failed: .*sync\.bad push/.test(line.text)).map((line) => line.round);
    expect(failedAt, result.stdout).toEqual([0, 1, 3, 7, 15]);
    const waitedAt = lines.filter((line) => /^backing off after failures: sync\.bad/.test(line.text)).map((line) => line.round);
    expect(waitedAt).toEqual([2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]);
    expect(lines.find((line) => line.round === 8)?.text).toBe('backing off after failures: sync.bad (failed 4 times in a row; next try in round 15)');
    // The other sync kept its rhythm: pushed in every one of those rounds.
    for (let round = 0; round <= 15; round++) {
      expect(lines.some((line) => line.round === round && /^applied \d+, failed \d+, skipped \d+: .*sync\.state push/.test(line.text)), `round ${round} pushed sync.state\n${result.stdout}`).toBe(true);
    }
    expect(existsSync(join(f.bucket, 'state', 'tick-0.txt'))).toBe(true);
    expect(existsSync(join(readOnly, 'never-saved.txt'))).toBe(false);
  }, 120_000);

  it('every --verify-every rounds checks the sizes in the store, and the same round pushes back what went missing', async () => {
    const f = makeFixture({ sync: true });
    writeFileSync(join(f.dir, 'state', 'notes.md'), 'kept\n');
    await converge(f);
    const stored = join(f.bucket, 'state', 'app.db');
    const run = f.start(['watch', '--interval', '1s', '--auto-approve', '--verify-every', '2']);
    await run.waitFor(/ round 0\] no changes$/m);
    rmSync(stored); // the store lost an object behind persist's back
    await until(() => existsSync(stored), 'watch pushed the lost file again', 15_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${run.output().stdout}`);
    });
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(readFileSync(stored, 'utf8')).toBe('rows\n');
    const lines = rounds(result.stdout);
    // Round 1 does not see it: a plan compares with the manifest, not with the stored objects.
    expect(lines.filter((line) => line.round === 1).map((line) => line.text)).toEqual(['no changes']);
    const round2 = lines.filter((line) => line.round === 2).map((line) => line.text);
    expect(round2[0]).toBe('size check (every 2 rounds): 2 stored files checked; 1 missing or damaged file: sync.state app.db (missing); this round pushes them again');
    expect(round2.at(-1)).toMatch(/^applied 1, failed 0, skipped 0: sync\.state push$/);
    expect(result.stdout).toMatch(/^✔ 1\. ~ sync\.state {2}push: copied 1 file \(5 B\)$/m);
  }, 60_000);

  it('holds the lease: renewed while idle, so another machine waits and fails naming it; kept when watch stops; released by shutdown', async () => {
    const f = makeFixture({ sync: true, leaseTtl: '5s' });
    await converge(f);
    const leaseFile = join(f.bucket, '.persist-lease.json');
    const lease = () => JSON.parse(readFileSync(leaseFile, 'utf8')) as LeaseFile;
    const self = readFileSync(join(f.stateDir, 'machine-id'), 'utf8').trim();
    const run = f.start(['watch', '--interval', '1s', '--auto-approve']);
    await run.waitFor(/ round 0\] no changes$/m);
    const first = lease();
    expect(first.machine).toBe(self);

    // Past the time to live with nothing to do: still ours, renewed (a third of 5 s after each renewal).
    await sleep(6_000);
    const later = lease();
    expect(later.machine).toBe(self);
    expect(Date.parse(later.renewedAt)).toBeGreaterThan(Date.parse(first.renewedAt));
    expect(Date.parse(later.expiresAt)).toBeGreaterThan(Date.now());

    // Another machine (its own folder and state folder, the same bucket) would restore: it waits, then names us.
    mkdirSync(join(f.dir, 'other'));
    writeFileSync(join(f.dir, 'other', 'persist.yaml'), readFileSync(f.spec, 'utf8').replace('path: ./bucket', 'path: ../bucket'));
    const other = (args: string[]) => f.run([...args, '-f', 'other/persist.yaml'], { env: { PERSIST_STATE_DIR: join(f.dir, 'other', '.state') } });
    const started = Date.now();
    const refused = await other(['apply', '--auto-approve', '--lock-timeout', '2s']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(refused.stderr).toContain(`waiting up to 2 s (--lock-timeout) for the bucket lease ${leaseFile}, held by machine ${self}`);
    expect(refused.stdout).toContain(`sync.state  restore: the bucket lease ${leaseFile} is held by machine ${self}`);
    expect(existsSync(join(f.dir, 'other', 'state'))).toBe(false);

    // watch stops: the lease stays (the container's shutdown still has to save).
    run.child.kill('SIGTERM');
    expect((await run.done).code).toBe(0);
    expect(lease().machine).toBe(self);
    const down = await f.run(['shutdown']);
    expect(down.code, down.stdout).toBe(0);
    expect(down.stdout).toContain(`✔ lease: released the lease ${leaseFile}`);
    expect(existsSync(leaseFile)).toBe(false);

    const proceeds = await other(['apply', '--auto-approve']);
    expect(proceeds.code, proceeds.stdout + proceeds.stderr).toBe(0);
    expect(readFileSync(join(f.dir, 'other', 'state', 'app.db'), 'utf8')).toBe('rows\n');
    expect(JSON.parse(readFileSync(leaseFile, 'utf8')).machine).not.toBe(self);
  }, 60_000);
});
