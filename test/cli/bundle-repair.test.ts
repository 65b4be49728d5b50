// A stored bundle that `persist verify` found damaged is written again by the next apply, whatever
// the damage did to its size, through the built CLI on the local backend with real git. Before,
// only a damage of the same size (a flipped byte) was repaired: with bytes appended or cut off, the
// file matched no generation record by size, the update refused it ("now holds no recorded
// generation ... not generation 1 this update was planned on") and every apply failed the same
// way, the store keeping a bundle git cannot read. The lineage guard stays: a valid bundle another
// machine pushed since verify is never written over.
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, git, makeFixture, ok, type Fixture } from './helpers.js';



const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const record = (path: string): { generation: number; parent: number | null; host: string; bytes: number; sha256: string } => JSON.parse(readFileSync(path, 'utf8'));

/** The stored bundle is whole: verify --hash passes, git clones it, and it holds the repo's HEAD. */
async function expectRestorable(fixture: Fixture, file: string, repo: string, clone: string): Promise<void> {
  expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/ok +bundle\.repo/);
  git(fixture.dir, 'clone', '-q', file, clone);
  expect(git(join(fixture.dir, clone), 'rev-parse', 'HEAD')).toBe(git(repo, 'rev-parse', 'HEAD'));
}

const DAMAGE = {
  'bytes appended': (file: string) => appendFileSync(file, 'junk written after the pack\n'),
  'the end cut off': (file: string) => truncateSync(file, statSync(file).size - 20),
};

describe('a stored bundle verify found damaged, its size changed', () => {
  for (const [name, damage] of Object.entries(DAMAGE)) {
    it(`${name}: the next apply writes it again (generation 2 on top of 1), and the store holds a restorable bundle`, async () => {
      const fixture = makeFixture({ bundle: true });
      const repo = join(fixture.dir, 'repo');
      const file = join(fixture.bucket, 'bundles', 'repo.bundle');
      ok(await fixture.run(['apply', '--auto-approve']));
      damage(file);
      const verified = await fixture.run(['verify']);
      expect(verified.code).toBe(1);
      expect(verified.stdout).toMatch(/bundles\/repo\.bundle: damaged: \d+ bytes, not the \d+ recorded in bundles\/repo\.bundle\.lineage\.json when generation 1 was written/);
      // One file, however many ways it is damaged (with --hash git cannot read it either).
      const hashed = await fixture.run(['verify', '--hash']);
      expect(hashed.stdout).toMatch(/FAIL bundle\.repo: 1 stored file checked \(size and content\), 1 missing or damaged\n/);
      expect(ok(await fixture.run(['plan']))).toMatch(/1\. ~ bundle\.repo {2}update \(repair\)/);

      const applied = ok(await fixture.run(['apply', '--auto-approve']));
      expect(applied).toMatch(/wrote bundles\/repo\.bundle \(1 ref, \d+ bytes\)/);
      expect(applied).toMatch(/Apply complete: 1 applied, 0 failed/);
      // A new generation whose parent is the damaged one's; the damaged file is not kept.
      const current = record(`${file}.lineage.json`);
      expect([current.generation, current.parent]).toEqual([2, 1]);
      expect(current.sha256).toBe(sha256(file));
      expect(existsSync(`${file}.1`)).toBe(false);
      expect(existsSync(`${file}.pending.lineage.json`)).toBe(false);
      expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
      await expectRestorable(fixture, file, repo, 'cloned');
    }, 60_000);
  }

  it('the repo committed after verify: the update replaces the damaged bundle without keeping it as a generation', async () => {
    const fixture = makeFixture({ bundle: true });
    const repo = join(fixture.dir, 'repo');
    const file = join(fixture.bucket, 'bundles', 'repo.bundle');
    ok(await fixture.run(['apply', '--auto-approve']));
    commit(repo, 'b.txt', 'two\n');
    ok(await fixture.run(['apply', '--auto-approve'])); // generation 2; generation 1 kept as .1
    const kept = sha256(`${file}.1`);
    DAMAGE['bytes appended'](file);
    expect((await fixture.run(['verify'])).code).toBe(1);
    commit(repo, 'c.txt', 'three\n');
    expect(ok(await fixture.run(['plan']))).toMatch(/~ bundle\.repo {2}update\b/);

    ok(await fixture.run(['apply', '--auto-approve']));
    const current = record(`${file}.lineage.json`);
    expect([current.generation, current.parent]).toEqual([3, 2]);
    // Nothing rotated: generation 1 is still .1, the damaged file is not .1 nor .2.
    expect(sha256(`${file}.1`)).toBe(kept);
    expect(record(`${file}.1.lineage.json`).generation).toBe(1);
    expect(existsSync(`${file}.2`)).toBe(false);
    await expectRestorable(fixture, file, repo, 'cloned');
  }, 60_000);

  it('killed during the repair (its pending record left in the store): the next plan and apply still repair it', async () => {
    const fixture = makeFixture({ bundle: true });
    const repo = join(fixture.dir, 'repo');
    const file = join(fixture.bucket, 'bundles', 'repo.bundle');
    ok(await fixture.run(['apply', '--auto-approve']));
    DAMAGE['the end cut off'](file);
    expect((await fixture.run(['verify'])).code).toBe(1);
    // What a repair killed after it wrote its pending record and before its upload leaves.
    const first = record(`${file}.lineage.json`);
    writeFileSync(`${file}.pending.lineage.json`, `${JSON.stringify({ ...first, generation: 2, parent: 1, bytes: first.bytes + 7, sha256: 'f'.repeat(64) })}\n`);
    expect(ok(await fixture.run(['plan']))).toMatch(/~ bundle\.repo {2}update \(repair\)/);
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(record(`${file}.lineage.json`).generation).toBe(2);
    expect(existsSync(`${file}.pending.lineage.json`)).toBe(false);
    await expectRestorable(fixture, file, repo, 'cloned');
  }, 60_000);

  it('damaged, not verified, and the repo changed: the update is refused naming persist verify; after verify it goes through', async () => {
    const fixture = makeFixture({ bundle: true });
    const repo = join(fixture.dir, 'repo');
    const file = join(fixture.bucket, 'bundles', 'repo.bundle');
    ok(await fixture.run(['apply', '--auto-approve']));
    DAMAGE['bytes appended'](file);
    const damaged = readFileSync(file);
    commit(repo, 'b.txt', 'two\n');
    const refused = await fixture.run(['apply', '--auto-approve']);
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/bundles\/repo\.bundle is not what generation 1 recorded in bundles\/repo\.bundle\.lineage\.json \(its size or sha256 differs: damaged, or put there by something other than persist\); nothing was written\. Run persist verify/);
    expect(readFileSync(file).equals(damaged)).toBe(true);
    expect((await fixture.run(['verify'])).code).toBe(1);
    ok(await fixture.run(['apply', '--auto-approve']));
    await expectRestorable(fixture, file, repo, 'cloned');
  }, 60_000);
});

describe('the lineage guard stays', () => {
  it("another machine's valid bundle, pushed after verify found the damage here, is never written over: this machine takes it", async () => {
    const spec = (repo: string) => `bundles:\n  repo:\n    repo: ./${repo}\n    file: bundles/repo.bundle\n`;
    const fixture = makeFixture({ bundle: true, leaseTtl: '1s' });
    const repo = join(fixture.dir, 'repo');
    const repoB = join(fixture.dir, 'repo-b');
    const file = join(fixture.bucket, 'bundles', 'repo.bundle');
    writeFileSync(join(fixture.dir, 'b.yaml'), readFileSync(fixture.spec, 'utf8').replace(spec('repo'), spec('repo-b')));
    const a = (args: string[]) => fixture.run([...args, ...(args[0] === 'apply' ? ['--lock-timeout', '20s'] : [])], { env: { HOSTNAME: 'a' } });
    const b = (args: string[]) => fixture.run([...args, ...(args[0] === 'apply' ? ['--lock-timeout', '20s'] : []), '-f', 'b.yaml'], { env: { PERSIST_STATE_DIR: join(fixture.dir, 'state-b'), HOSTNAME: 'b' } });

    ok(await a(['apply', '--auto-approve'])); // generation 1, by a
    ok(await b(['apply', '--auto-approve'])); // b restores it
    DAMAGE['bytes appended'](file);
    expect((await a(['verify'])).code).toBe(1);
    const aPlan = await a(['plan', '--out', 'a.plan']);
    expect(aPlan.stdout).toMatch(/~ bundle\.repo {2}update \(repair\)/);

    // b finds the damage too, commits, and saves: generation 2, a valid bundle.
    expect((await b(['verify'])).code).toBe(1);
    commit(repoB, 'b.txt', 'from b\n');
    ok(await b(['apply', '--auto-approve']));
    const written = readFileSync(file);
    expect(record(`${file}.lineage.json`)).toMatchObject({ generation: 2, parent: 1, host: 'b' });

    // a's saved repair plan is stale; a's next plan takes b's generation instead of saving over it.
    const stale = await a(['apply', 'a.plan']);
    expect(stale.code).toBe(1);
    expect(readFileSync(file).equals(written)).toBe(true);
    // Even were verify's finding to name b's file (its size and mtime), a's repair would not write over it.
    const state = join(fixture.stateDir, 'bundles');
    const finding = readdirSync(state).find((name) => name.startsWith('damaged-'))!;
    const info = statSync(file);
    writeFileSync(join(state, finding), `${JSON.stringify({ key: 'bundles/repo.bundle', size: info.size, mtimeMs: info.mtimeMs })}\n`);
    const plan = ok(await a(['plan']));
    expect(plan).not.toMatch(/repair/);
    expect(plan).toMatch(/<= bundle\.repo {2}restore/);
    expect(plan).toMatch(/holds generation 2, written by b/);
    ok(await a(['apply', '--auto-approve']));
    expect(readFileSync(file).equals(written)).toBe(true);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(git(repoB, 'rev-parse', 'HEAD'));
  }, 120_000);
});
