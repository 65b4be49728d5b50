// A bundle's durability through the built CLI, on the local backend with real git: a shallow clone
// saved and restored in a new container (new state folder) works (log, commit, the next save); a
// stored bundle damaged after it was written fails `verify --hash`; what a killed bundle update
// left on local disk is removed by the next one. Each case failed on the code before (the restored
// shallow repo could not be read and never saved again; verify --hash passed the damaged bundle;
// the killed update's folder stayed in $TMPDIR for good).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, makeFixture, ok } from './helpers.js';



/** A repo name a shell or a careless format string would trip on. */
const HOSTILE = `we ird 'q' "dq" $HOME ü -x`;

/** An origin with three commits; `<dir>/<HOSTILE>` a shallow clone of it (depth 1). */
function shallowClone(dir: string): { repo: string; head: string } {
  const origin = join(dir, 'origin');
  mkdirSync(origin);
  git(origin, 'init', '-q', '-b', 'main');
  for (const n of [1, 2, 3]) {
    writeFileSync(join(origin, 'f.txt'), `${n}\n`);
    git(origin, 'add', 'f.txt');
    git(origin, 'commit', '-qm', `commit ${n}`);
  }
  git(dir, 'clone', '-q', '--depth', '1', `file://${origin}`, HOSTILE);
  const repo = join(dir, HOSTILE);
  return { repo, head: git(repo, 'rev-parse', 'HEAD') };
}

const spec = (repo: string) => `bundles:\n  repo:\n    repo: ${JSON.stringify(`./${repo}`)}\n    file: bundles/repo.bundle\n`;

describe('a shallow repo', () => {
  it('round-trips into a new container: the restored repo reads its history, commits, and is saved again', async () => {
    const fixture = makeFixture({ extra: spec(HOSTILE), leaseTtl: '1s' });
    const { repo, head } = shallowClone(fixture.dir);
    expect(readFileSync(join(repo, '.git', 'shallow'), 'utf8').trim()).toBe(head);
    const first = ok(await fixture.run(['apply', '--auto-approve']));
    expect(first).toMatch(/wrote bundles\/repo\.bundle \(1 ref, \d+ bytes\)/);
    expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);

    // A new container: the repo is gone, the state folder is new.
    renameSync(repo, join(fixture.dir, 'moved-away'));
    const box2 = { env: { PERSIST_STATE_DIR: join(fixture.dir, 'state-2') } };
    const restored = ok(await fixture.run(['apply', '--auto-approve', '--lock-timeout', '20s'], box2));
    expect(restored).toMatch(/restored 1 ref at main \([0-9a-f]{12}\), checked out 1 file\b/);
    expect(readFileSync(join(repo, '.git', 'shallow'), 'utf8').trim()).toBe(head);
    expect(git(repo, 'log', '--format=%s')).toBe('commit 3');
    git(repo, 'fsck', '--no-progress');
    expect(ok(await fixture.run(['plan'], box2))).toMatch(/No changes/);
    expect(ok(await fixture.run(['verify', '--hash'], box2))).toMatch(/ok/);

    // A new commit is saved, and a third container gets it with its history.
    writeFileSync(join(repo, 'g.txt'), 'four\n');
    git(repo, 'add', 'g.txt');
    git(repo, 'commit', '-qm', 'commit 4');
    const next = git(repo, 'rev-parse', 'HEAD');
    expect(ok(await fixture.run(['apply', '--auto-approve'], box2))).toMatch(/wrote bundles\/repo\.bundle \(1 ref, \d+ bytes, earlier generations: \.1\)/);
    expect(ok(await fixture.run(['plan'], box2))).toMatch(/No changes/);
    renameSync(repo, join(fixture.dir, 'moved-away-2'));
    const box3 = { env: { PERSIST_STATE_DIR: join(fixture.dir, 'state-3') } };
    ok(await fixture.run(['apply', '--auto-approve', '--lock-timeout', '20s'], box3));
    expect(git(repo, 'log', '--format=%s')).toBe('commit 4\ncommit 3');
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(next);
    git(repo, 'fsck', '--no-progress');
  });

  it('saved before persist recorded the boundary (a bundle without it) is restored readable, and the next save records it', async () => {
    const fixture = makeFixture({ extra: spec(HOSTILE) });
    const { repo, head } = shallowClone(fixture.dir);
    // What `git bundle create --all` of a shallow repo writes: no prerequisites, no boundary.
    mkdirSync(join(fixture.bucket, 'bundles'), { recursive: true });
    git(repo, 'bundle', 'create', '-q', join(fixture.bucket, 'bundles', 'repo.bundle'), 'HEAD', 'main');
    renameSync(repo, join(fixture.dir, 'moved-away'));
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(readFileSync(join(repo, '.git', 'shallow'), 'utf8').trim()).toBe(head);
    expect(git(repo, 'log', '--format=%s')).toBe('commit 3');
    const plan = await fixture.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/history: complete → shallow \(1 boundary commit\)/);
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
  });

  it('deepened to its full history: the plan shows the change and the bundle holds no boundary after', async () => {
    const fixture = makeFixture({ extra: spec(HOSTILE) });
    const { repo } = shallowClone(fixture.dir);
    ok(await fixture.run(['apply', '--auto-approve']));
    git(repo, 'fetch', '-q', '--unshallow');
    expect(existsSync(join(repo, '.git', 'shallow'))).toBe(false);
    const plan = await fixture.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/history: shallow \(1 boundary commit\) → complete/);
    ok(await fixture.run(['apply', '--auto-approve']));
    const header = readFileSync(join(fixture.bucket, 'bundles', 'repo.bundle')).subarray(0, 2000).toString('latin1');
    expect(header).not.toMatch(/refs\/persist\/shallow\//);
    expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
  });
});

describe('verify --hash', () => {
  it('fails a stored bundle whose content no longer matches the sha256 recorded when it was written', async () => {
    const fixture = makeFixture({ bundle: true });
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/ok +bundle\.repo/);
    const file = join(fixture.bucket, 'bundles', 'repo.bundle');
    const bytes = readFileSync(file);
    bytes[bytes.length - 30]! ^= 0xff;
    writeFileSync(file, bytes);
    const hashed = await fixture.run(['verify', '--hash']);
    expect(hashed.code).toBe(1);
    expect(hashed.stdout).toMatch(/bundles\/repo\.bundle/);
    expect(hashed.stdout).toMatch(/FAIL bundle\.repo/);
    expect(hashed.stdout).toMatch(/bundles\/repo\.bundle: damaged: its content \(sha256 [0-9a-f]{16}…\) is not what was written as generation 1 \(sha256 [0-9a-f]{16}… in bundles\/repo\.bundle\.lineage\.json\)/);
    expect(hashed.stdout).toMatch(/bundles\/repo\.bundle: damaged: git cannot read it \(git bundle unbundle: exit \d+/);
    // Without a record (a bundle written before persist kept one), git reading the pack still finds it.
    renameSync(join(fixture.bucket, 'bundles', 'repo.bundle.lineage.json'), join(fixture.dir, 'record.json'));
    const unrecorded = await fixture.run(['verify', '--hash']);
    expect(unrecorded.code).toBe(1);
    expect(unrecorded.stdout).toMatch(/git cannot read it/);
    renameSync(join(fixture.dir, 'record.json'), join(fixture.bucket, 'bundles', 'repo.bundle.lineage.json'));
    // Without --hash only sizes are compared: the same size passes.
    expect((await fixture.run(['verify'])).code).toBe(0);

    // The next plan writes it again from the repo, without keeping the damaged file as a generation.
    await fixture.run(['verify', '--hash']);
    const plan = await fixture.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/~ bundle\.repo {2}update \(repair\)/);
    expect(plan.stdout).toMatch(/persist verify found bundles\/repo\.bundle damaged/);
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(existsSync(`${file}.1`)).toBe(false);
    expect(ok(await fixture.run(['verify', '--hash']))).toMatch(/ok +bundle\.repo/);
    expect(ok(await fixture.run(['plan']))).toMatch(/No changes/);
    git(fixture.dir, 'clone', '-q', file, 'cloned');
    expect(git(join(fixture.dir, 'cloned'), 'rev-parse', 'HEAD')).toBe(git(join(fixture.dir, 'repo'), 'rev-parse', 'HEAD'));
  });
});

describe('leftovers of a killed bundle update', () => {
  it('are removed by the next update; a live process keeps its own', async () => {
    const fixture = makeFixture({ bundle: true });
    ok(await fixture.run(['apply', '--auto-approve']));
    const tmp = join(fixture.stateDir, 'tmp');
    // What a kill -9 in the middle of an update left: a folder named after a pid that is gone.
    const dead = join(tmp, 'persist-bundle-999999999-0123456789ab');
    const deadScratch = join(tmp, 'persist-worktree-999999999-abcdefgh');
    const live = join(tmp, `persist-bundle-${process.pid}-0123456789ab`);
    // A work tree snapshot's scratch folder in $TMPDIR, of a run killed meanwhile.
    const deadInTmp = join(process.env.TMPDIR ?? '/tmp', `persist-worktree-999999998-${process.pid}x`);
    for (const folder of [dead, deadScratch, live, deadInTmp]) {
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, 'repo.bundle'), Buffer.alloc(1024));
    }
    git(join(fixture.dir, 'repo'), 'commit', '-q', '--allow-empty', '-m', 'second');
    ok(await fixture.run(['apply', '--auto-approve']));
    expect(readdirSync(tmp).sort()).toEqual([`persist-bundle-${process.pid}-0123456789ab`]);
    expect(existsSync(deadInTmp)).toBe(false);
  });

  it('a real SIGKILL while the bundle is built leaves its folder in the state folder, and the next apply removes it', async () => {
    const fixture = makeFixture({ bundle: true });
    const repo = join(fixture.dir, 'repo');
    // Incompressible content, so that building the bundle takes long enough to be killed in it.
    writeFileSync(join(repo, 'big.bin'), randomBytes(48 * 1024 * 1024));
    git(repo, 'add', 'big.bin');
    git(repo, 'commit', '-qm', 'big');
    const tmp = join(fixture.stateDir, 'tmp');
    const building = () => (existsSync(tmp) ? readdirSync(tmp).filter((name) => name.startsWith('persist-bundle-')) : []);
    const run = fixture.start(['apply', '--auto-approve'], { timeoutMs: 120_000 });
    const deadline = Date.now() + 60_000;
    while (building().length === 0 && run.child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.signal).toBe('SIGKILL');
    expect(building()).toHaveLength(1);
    const applied = ok(await fixture.run(['apply', '--auto-approve'], { timeoutMs: 120_000 }));
    expect(applied).toMatch(/wrote bundles\/repo\.bundle/);
    expect(building()).toEqual([]);
  }, 180_000);
});
