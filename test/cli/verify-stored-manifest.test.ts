// `persist verify` checks the manifest as the store holds it. Plan and push read a manifest's
// shards from this machine's copies (manifest-cache.ts) whenever the root names their sha256, so a
// shard damaged in the store went unseen on the machine that pushed (verify --hash "Verified",
// plan "No changes") while any other machine could not read the manifest at all (plan: conflict
// "not valid JSON", nothing restorable). Now verify reads every shard from the store, names the
// damaged one, exits 1 and records it; the next plan shows `push (repair)` and the push writes
// the shard again although no file changed; then another machine reads the manifest.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture, ok, sleep } from './helpers.js';


const DAMAGE = {
  'overwritten with garbage': (shard: string) => writeFileSync(shard, 'garbage{'),
  deleted: (shard: string) => unlinkSync(shard),
};

describe('verify reads the manifest shards from the store', () => {
  for (const [name, damage] of Object.entries(DAMAGE)) {
    for (const hash of [false, true]) {
      it(`a shard ${name}: verify${hash ? ' --hash' : ''} fails naming it, plan repairs it, another machine can then read the manifest`, async () => {
        const fixture = makeFixture({ sync: true });
        ok(await fixture.run(['apply', '--auto-approve']));
        const shard = join(fixture.bucket, 'state', '.persist-sync', '0-of-1.json');
        const good = readFileSync(shard, 'utf8');
        damage(shard);
        const other = { PERSIST_STATE_DIR: join(fixture.dir, '.state-b') };

        const verified = await fixture.run(['verify', ...(hash ? ['--hash'] : [])]);
        expect(verified.code, verified.stdout).toBe(1);
        expect(verified.stdout).toMatch(name === 'deleted' ? /\.persist-sync\/0-of-1\.json: missing/ : /\.persist-sync\/0-of-1\.json: damaged: its content \(8 bytes, sha256 [0-9a-f]+…\) is not the manifest part \.persist-sync\.json records/);
        expect(verified.stdout).toMatch(/FAIL sync\.state/);
        expect(verified.stdout).not.toContain('Verified');

        const plan = ok(await fixture.run(['plan']));
        expect(plan).toMatch(/~ sync\.state {2}push \(repair\)/);
        expect(plan).toContain('repair: the manifest part 0-of-1.json damaged in the store (found by persist verify)\n');
        expect(plan).not.toContain('stored file');
        ok(await fixture.run(['apply', '--auto-approve']));
        expect(readFileSync(shard, 'utf8')).toBe(good);
        expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/Verified/);
        expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
        // A machine without copies reads the manifest from the store.
        expect(ok(await fixture.run(['verify', '--hash'], { env: other }))).toMatch(/ok +sync\.state/);
        // The damaged shard was not kept as generation 1's: generation 1 can still be rolled back to.
        writeFileSync(join(fixture.dir, 'state', 'app.db'), 'rows changed\n');
        ok(await fixture.run(['apply', '--auto-approve']));
        expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/Verified/);
        ok(await fixture.run(['rollback', 'sync.state', '--to', '1', '--auto-approve']));
        expect(readFileSync(join(fixture.dir, 'state', 'app.db'), 'utf8')).toBe('rows\n');
      });
    }
  }

  it('a shard another machine is pushing (its root not written yet, its lease live): verify waits for the root and finds nothing wrong', { timeout: 60_000 }, async () => {
    const fixture = makeFixture({ sync: true });
    ok(await fixture.run(['apply', '--auto-approve']));
    const shard = join(fixture.bucket, 'state', '.persist-sync', '0-of-1.json');
    const rootPath = join(fixture.bucket, 'state', '.persist-sync.json');
    const now = new Date();
    writeFileSync(join(fixture.bucket, '.persist-lease.json'), `${JSON.stringify({ machine: 'c'.repeat(32), host: 'other-box', pid: 4242, acquiredAt: now.toISOString(), renewedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 120_000).toISOString() })}\n`);
    // The other machine's push: a new shard text (another mtime), its root a moment later.
    const text = readFileSync(shard, 'utf8').replace(/"mtimeMs":[0-9.]+/, '"mtimeMs":1000');
    const root = readFileSync(rootPath, 'utf8').replace(/"sha256":"[0-9a-f]{64}"/, `"sha256":"${createHash('sha256').update(text).digest('hex')}"`);
    writeFileSync(shard, text);
    const running = fixture.start(['verify']);
    await sleep(1_500);
    writeFileSync(rootPath, root);
    const done = await running.done;
    expect(done.code, done.stdout).toBe(0);
    expect(done.stdout).toMatch(/Verified/);
  });

  it('a machine without a copy names the damaged part instead of "no manifest"', async () => {
    const fixture = makeFixture({ sync: true, leaseTtl: '2s' });
    ok(await fixture.run(['apply', '--auto-approve']));
    writeFileSync(join(fixture.bucket, 'state', '.persist-sync', '0-of-1.json'), 'garbage{');
    await sleep(2_500); // the first machine's lease has expired: it is not pushing
    const verified = await fixture.run(['verify'], { env: { PERSIST_STATE_DIR: join(fixture.dir, '.state-b') } });
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(/\.persist-sync\/0-of-1\.json: damaged/);
  });
});
