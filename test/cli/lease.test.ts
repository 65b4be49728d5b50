// The bucket lease where a user reads about it: a FUSE-mounted bucket without credentials cannot
// take one, and plan and status say what that means; a no-op apply takes none.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, sleep } from './helpers.js';

const NO_LEASE = 'bucket data has no lease: a FUSE mount without credentials cannot take a lease (a compare-and-swap needs the S3 API), so nothing keeps a second container from saving into it at the same time; add credentials: to the bucket to have one';

describe('the bucket lease in plan and status', () => {
  it('plan and status say that a FUSE mount without credentials has no lease, and what that means', async () => {
    const f = makeFixture();
    writeFileSync(f.spec, ['version: 1', 'buckets:', '  data:', '    name: test-data', '    endpoint: http://127.0.0.1:9', '    mount: { backend: s3fs, path: ./mnt }', 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    mkdirSync(join(f.dir, 'state'));
    writeFileSync(join(f.dir, 'state', 'a.txt'), 'a\n');
    const plan = await f.run(['plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`note: ${NO_LEASE}\n`);
    const json = JSON.parse((await f.run(['plan', '--json'])).stdout) as { notes?: string[] };
    expect(json.notes).toEqual([NO_LEASE]);
    const status = JSON.parse((await f.run(['status', '--json'])).stdout) as { resources: { address: string; ok: boolean; facts: Record<string, unknown> }[] };
    expect(status.resources.find((r) => r.address === 'lease.data')).toEqual({
      address: 'lease.data',
      ok: true,
      state: 'ok',
      facts: { lease: 'none: a FUSE mount without credentials cannot take one, so a second container is not kept out' },
    });
  });

  it('a bucket that can have one gets no note; a no-op apply takes no lease', async () => {
    const f = makeFixture({ sync: true });
    const plan = await f.run(['plan']);
    expect(plan.stdout).not.toContain('has no lease');
    await converge(f);
    const lease = join(f.bucket, '.persist-lease.json');
    expect(existsSync(lease)).toBe(true);
    const down = await f.run(['shutdown']);
    expect(down.code, down.stdout).toBe(0);
    expect(existsSync(lease)).toBe(false);
    const again = await f.run(['apply', '--auto-approve']);
    expect(again.stdout).toContain('No changes');
    expect(existsSync(lease)).toBe(false);
  });
});

describe('a machine whose lease another machine took over', () => {
  it('apply says it took it over; the old machine\'s watch and shutdown save nothing into that bucket and name the holder', async () => {
    // A's lease lives 1 s; B's spec (its own folder, the same bucket) gives B's lease a minute.
    const f = makeFixture({ sync: true, leaseTtl: '1s' });
    await converge(f);
    const a = readFileSync(join(f.stateDir, 'machine-id'), 'utf8').trim();
    mkdirSync(join(f.dir, 'b'));
    writeFileSync(join(f.dir, 'b', 'persist.yaml'), readFileSync(f.spec, 'utf8').replace('path: ./bucket', 'path: ../bucket').replace('ttl: 1s', 'ttl: 60s'));
    const runB = (args: string[]) => f.run([...args, '-f', 'b/persist.yaml'], { env: { PERSIST_STATE_DIR: join(f.dir, 'b', '.state') } });
    await sleep(1_200); // A stopped renewing (killed without shutdown)
    const took = await runB(['apply', '--auto-approve']);
    expect(took.code, took.stdout + took.stderr).toBe(0);
    const leaseFile = join(f.bucket, '.persist-lease.json');
    expect(took.stderr).toContain(`took over the bucket lease ${leaseFile} from machine ${a}`);
    expect(took.stderr).toContain('it expired without being released');
    const b = readFileSync(join(f.dir, 'b', '.state', 'machine-id'), 'utf8').trim();

    // A comes back to life with a change: watch leaves it alone, naming B.
    writeFileSync(join(f.dir, 'state', 'late.txt'), 'too late\n');
    const watch = f.start(['watch', '--interval', '1s', '--auto-approve']);
    await watch.waitFor(new RegExp(`round 0\\] not applied, bucket data is not ours: sync\\.state push \\(the bucket lease ${leaseFile.replace(/[.]/g, '\\.')} is held by machine ${b}`));
    watch.child.kill('SIGTERM');
    expect((await watch.done).code).toBe(0);
    // And its shutdown saves nothing there, says why, and releases nothing.
    const down = await f.run(['shutdown']);
    expect(down.code, down.stdout).toBe(1);
    expect(down.stdout).toContain(`✖ sync.state: not saved: the bucket lease ${leaseFile} is held by machine ${b}`);
    expect(existsSync(join(f.bucket, 'state', 'late.txt'))).toBe(false);
    expect(JSON.parse(readFileSync(leaseFile, 'utf8')).machine).toBe(b);
  }, 60_000);
});

describe('a redeploy whose plan the old container\'s last save changes', () => {
  it("B's first apply planned a first save of its default files; after waiting for A's lease it plans again and restores A's last push instead", async () => {
    // A holds the lease (its link took it) and has not saved its sync yet: the mirror is empty.
    const f = makeFixture({ links: ['memory'], sync: true });
    rmSync(join(f.dir, 'state', 'app.db'));
    await converge(f);
    expect(existsSync(join(f.bucket, '.persist-lease.json'))).toBe(true);
    expect(existsSync(join(f.bucket, 'state'))).toBe(false);

    // B: a new container whose agent wrote its default files before anything was restored.
    mkdirSync(join(f.dir, 'b', 'state'), { recursive: true });
    writeFileSync(join(f.dir, 'b', 'persist.yaml'), readFileSync(f.spec, 'utf8').replace('path: ./bucket', 'path: ../bucket'));
    writeFileSync(join(f.dir, 'b', 'state', 'app.db'), 'defaults\n');
    const envB = { env: { PERSIST_STATE_DIR: join(f.dir, 'b', '.state') } };
    const planned = await f.run(['plan', '-f', 'b/persist.yaml'], envB);
    expect(planned.stdout).toMatch(/~ sync\.state +push/);
    const boot = f.start(['apply', '--auto-approve', '--lock-timeout', '60s', '-f', 'b/persist.yaml'], envB);
    for (let waited = 0; !boot.output().stderr.includes('(--lock-timeout) for the bucket lease'); waited += 100) {
      expect(waited, boot.output().stdout + boot.output().stderr).toBeLessThan(15_000);
      await sleep(100);
    }

    // A's last save, then it stops: its shutdown pushes and releases the lease.
    writeFileSync(join(f.dir, 'state', 'app.db'), 'the final rows of A\n');
    const down = await f.run(['shutdown']);
    expect(down.code, down.stdout).toBe(0);

    const booted = await boot.done;
    expect(booted.code, booted.stdout + booted.stderr).toBe(0);
    expect(booted.stdout).toContain('The store changed while this apply waited for the lease (the other container saved last); the plan is now:');
    expect(booted.stdout).toMatch(/<= sync\.state +restore/);
    expect(readFileSync(join(f.dir, 'b', 'state', 'app.db'), 'utf8')).toBe('the final rows of A\n');
    // B's default file is kept in its backups, and the store still holds A's push.
    const backups = join(f.dir, 'b', 'ws', '.persist-backups');
    const [aside] = readdirSync(backups);
    expect(readFileSync(join(backups, aside!, 'app.db'), 'utf8')).toBe('defaults\n');
    expect(readFileSync(join(f.bucket, 'state', 'app.db'), 'utf8')).toBe('the final rows of A\n');
  }, 60_000);
});
