// The bucket lease where a user reads about it: a FUSE-mounted bucket without credentials cannot
// take one, and plan and status say what that means; a no-op apply takes none.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture } from './helpers.js';

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
