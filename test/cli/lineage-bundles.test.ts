// Lineage of bundles through the built CLI, on the local backend with real git: rollback of a repo
// (refs, work tree, stash) to an earlier generation and forward again; a repo this machine never
// saved that meets a bundle holding other commits is restored, the local repo kept aside; two
// machines on one bundle. Each case fails on the code before (rollback of a bundle was refused,
// the fresh repo was an --allow-shrink conflict, the refused update named no command to run).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture, snapshotTree, type Fixture } from './helpers.js';

const SPEC = [
  'version: 1',
  'workspace: ./repo',
  'buckets:',
  '  data:',
  '    name: moltbot-data-${environment}',
  // A short lease: these machines stop without a shutdown, and the next one takes the bucket over
  // once it expires (each apply below waits for it with --lock-timeout).
  '    lease: { ttl: 1s }',
  '    mount:',
  '      backend: local',
  '      path: ./bucket-${environment}',
  'links:',
  '  memory: workspace/memory',
  'bundles:',
  '  repo:',
  '    repo: ./repo',
  '    file: repo.bundle',
  'environments:',
  '  development: {}',
  '  production: {}',
  '',
].join('\n');

const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };

function git(repo: string, ...args: string[]): string {
  return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: GIT_ENV }).trim();
}

function write(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), text);
}

function commit(repo: string, files: Record<string, string>, message: string): string {
  for (const [path, text] of Object.entries(files)) write(repo, path, text);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-qm', message);
  return git(repo, 'rev-parse', 'HEAD');
}

async function ok(result: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const done = await result;
  if (done.code !== 0) throw new Error(`exit ${done.code}\n${done.stdout}\n${done.stderr}`);
  return done.stdout;
}

interface Machine {
  run(args: string[]): ReturnType<Fixture['run']>;
  state: string;
  env: Record<string, string>;
}

function setup(spec = SPEC): { fixture: Fixture; repo: string; bucket: (env: string) => string; machine: (name: string, specFile?: string) => Machine } {
  const fixture = makeFixture();
  writeFileSync(join(fixture.dir, 'lineage.yaml'), spec);
  const machine = (name: string, specFile = 'lineage.yaml'): Machine => {
    const state = join(fixture.dir, `state-${name}`);
    const env = { PERSIST_STATE_DIR: state, HOSTNAME: name };
    return { state, env, run: (args) => fixture.run([...args, ...(args[0] === 'apply' ? ['--lock-timeout', '20s'] : []), '-f', specFile], { env }) };
  };
  return { fixture, repo: join(fixture.dir, 'repo'), bucket: (env) => join(fixture.dir, `bucket-${env}`), machine };
}

/** What a generation of the repo is: HEAD, branches and tags, the work tree's files, the stash. */
function repoState(repo: string): { head: string; refs: string; status: string; files: Record<string, string>; stash: string } {
  const files: Record<string, string> = {};
  for (const name of readdirSync(repo)) {
    if (name === '.git' || name === 'memory' || name === '.persist-backups') continue;
    files[name] = readFileSync(join(repo, name), 'utf8');
  }
  return {
    head: git(repo, 'rev-parse', 'HEAD'),
    refs: git(repo, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'),
    status: git(repo, 'status', '--porcelain', '--untracked-files=all', '--', '.', ':!memory'),
    files,
    stash: git(repo, 'stash', 'list', '--format=%H'),
  };
}

describe('bundle rollback', () => {
  it('three saves, history lists them, rollback to the first restores it, rolling forward to the third works after', async () => {
    const { fixture, repo, machine } = setup();
    const one = machine('box');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    write(repo, '.gitignore', 'memory\n');
    commit(repo, { 'a.txt': 'one\n' }, 'first');
    // Generation 1: a stash entry, a modified file and an untracked one (the work tree snapshot).
    write(repo, 'a.txt', 'stashed\n');
    git(repo, 'stash', '-q');
    write(repo, 'a.txt', 'one, edited\n');
    write(repo, 'notes.md', 'untracked notes\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    const saves = [repoState(repo)];
    git(repo, 'add', '-A');
    commit(repo, { 'b.txt': 'two\n' }, 'second');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    saves.push(repoState(repo));
    git(repo, 'branch', 'feature');
    commit(repo, { 'a.txt': 'three\n' }, 'third');
    git(repo, 'stash', 'drop', '-q');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    saves.push(repoState(repo));
    expect(saves[0]!.stash).not.toBe('');
    expect(saves[0]!.status).toMatch(/M a\.txt\n\?\? notes\.md/);

    const text = await ok(one.run(['history', '--env', 'production', '--target', 'bundle.repo']));
    expect(text).toMatch(/\* 3 .*box \([0-9a-f]{8}\)\s+2 refs/);
    const json = JSON.parse(await ok(one.run(['history', '--env', 'production', '--json', '--target', 'bundle.repo']))) as { resources: { generations: { generation: number; current: boolean; parent: number | null }[] }[] };
    expect(json.resources[0]!.generations.map((g) => [g.generation, g.current, g.parent])).toEqual([
      [3, true, 2],
      [2, false, 1],
      [1, false, null],
    ]);

    // Without a terminal, rollback needs --auto-approve; nothing changes.
    const unapproved = await one.run(['rollback', 'bundle.repo', '--to', '1', '--env', 'production']);
    expect(unapproved.code).toBe(1);
    expect(unapproved.stderr).toMatch(/--auto-approve/);
    expect(repoState(repo)).toEqual(saves[2]);

    const rolled = await ok(one.run(['rollback', 'bundle.repo', '--to', '1', '--env', 'production', '--auto-approve']));
    expect(rolled).toMatch(/bundle\.repo: rolled back to generation 1 \(1 ref at main \([0-9a-f]{12}\)\)/);
    expect(repoState(repo)).toEqual(saves[0]);
    // The link inside the repo stays a link; the repo as it was is kept aside, whole.
    expect(readlinkSync(join(repo, 'memory'))).toBe(join(fixture.dir, 'bucket-production', 'workspace', 'memory'));
    const aside = rolled.match(/kept in (\S+)\.\n/)![1]!;
    expect(repoState(aside)).toEqual(saves[2]);

    // Rolling forward to the third works after that.
    await ok(one.run(['rollback', 'bundle.repo', '--to', '3', '--env', 'production', '--auto-approve']));
    expect(repoState(repo)).toEqual(saves[2]);
    expect((await one.run(['plan', '--env', 'production', '--detailed-exitcode'])).code).toBe(0);

    // Back to the second and saved: generation 4, parent 3, without --allow-shrink; 3 stays restorable.
    await ok(one.run(['rollback', 'bundle.repo', '--to', '2', '--env', 'production', '--auto-approve']));
    const plan = await ok(one.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/~ bundle\.repo {2}update/);
    expect(plan).toMatch(/rolled back from generation 3/);
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    const after = JSON.parse(await ok(one.run(['history', '--env', 'production', '--json', '--target', 'bundle.repo']))) as { resources: { generations: { generation: number; parent: number | null; current: boolean }[] }[] };
    expect(after.resources[0]!.generations[0]).toMatchObject({ generation: 4, parent: 3, current: true });
    await ok(one.run(['rollback', 'bundle.repo', '--to', '3', '--env', 'production', '--auto-approve']));
    expect(repoState(repo)).toEqual(saves[2]);
  }, 180_000);
});

describe('a bundle this machine never saw', () => {
  it('a fresh container whose onboarding made a repo with a commit restores the bundle, the local repo kept aside', async () => {
    const { repo, bucket, machine } = setup();
    const old = machine('old');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    write(repo, '.gitignore', 'memory\n');
    const saved = commit(repo, { 'agent.md': 'months of work\n' }, 'work');
    git(repo, 'branch', 'experiments');
    await ok(old.run(['apply', '--env', 'production', '--auto-approve']));
    write(join(repo, 'memory'), 'notes.md', 'remembered\n');
    const store = snapshotTree(bucket('production'));

    // A new container: the image's onboarding made a fresh repo with a commit before the restore.
    execFileSync('rm', ['-rf', repo]);
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    const template = commit(repo, { 'agent.md': 'template\n', 'README.md': 'welcome\n' }, 'onboarding');
    const fresh = machine('new');
    const plan = await ok(fresh.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/<= bundle\.repo {2}restore \(local repo kept aside: 3 refs differ\)/);
    expect(plan).toMatch(/never restored or saved: restored, never saved over/);
    const applied = await ok(fresh.run(['apply', '--env', 'production', '--auto-approve']));
    expect(applied).toMatch(/the local repo was kept aside in .*\.persist-backups/);

    // The store is unchanged; the machine ends with the saved repo; the onboarding repo is aside.
    const bundles = (tree: Map<string, string>) => [...tree].filter(([path]) => path.startsWith('/repo.bundle'));
    expect(bundles(snapshotTree(bucket('production')))).toEqual(bundles(store));
    expect(bundles(store).length).toBeGreaterThan(1);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(saved);
    expect(git(repo, 'branch', '--format=%(refname:short)')).toBe('experiments\nmain');
    expect(readFileSync(join(repo, 'agent.md'), 'utf8')).toBe('months of work\n');
    expect(existsSync(join(repo, 'README.md'))).toBe(false);
    expect(readFileSync(join(repo, 'memory', 'notes.md'), 'utf8')).toBe('remembered\n');
    const backups = join(repo, '.persist-backups');
    const [aside] = readdirSync(backups).filter((name) => name.startsWith('bundle.repo-'));
    expect(git(join(backups, aside!), 'rev-parse', 'HEAD')).toBe(template);
    expect(readFileSync(join(backups, aside!, 'README.md'), 'utf8')).toBe('welcome\n');
    expect((await fresh.run(['plan', '--env', 'production', '--detailed-exitcode'])).code).toBe(0);
  }, 90_000);
});

describe('two machines, one bundle', () => {
  it('every update that reported success is still in the store; the one that could not update says why and what to run', async () => {
    const spec = SPEC.replace(/links:\n {2}memory: workspace\/memory\n/, '');
    const { fixture, repo, machine } = setup(spec);
    const repoB = join(fixture.dir, 'repo-b');
    writeFileSync(join(fixture.dir, 'lineage-b.yaml'), spec.replace('repo: ./repo', 'repo: ./repo-b').replace('workspace: ./repo', 'workspace: ./repo-b'));
    const a = machine('a');
    const b = machine('b', 'lineage-b.yaml');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    const heads: Record<number, string> = { 1: commit(repo, { 'notes.md': 'a1\n' }, 'a1') };
    await ok(a.run(['apply', '--env', 'production', '--auto-approve'])); // generation 1, by a
    await ok(b.run(['apply', '--env', 'production', '--auto-approve'])); // b restores generation 1
    expect(git(repoB, 'rev-parse', 'HEAD')).toBe(heads[1]);

    heads[2] = commit(repo, { 'notes.md': 'a2\n' }, 'a2');
    await ok(a.run(['apply', '--env', 'production', '--auto-approve'])); // generation 2, by a
    const bOwn = commit(repoB, { 'notes.md': 'b2\n' }, 'b2');
    const refused = await b.run(['apply', '--env', 'production', '--auto-approve']);
    expect(refused.code).toBe(1);
    const said = refused.stdout + refused.stderr;
    expect(said).toMatch(/holds generation 2, written by a \([0-9a-f]{8}\) at .*, newer than generation 1 this machine last saw/);
    expect(said).toContain('persist rollback bundle.repo --to 2');
    expect(said).toContain('persist apply --force-push');

    // status on b, and watch: the conflict once a round with the one command that resolves it.
    const status = await ok(b.run(['status', '--env', 'production']));
    expect(status).toMatch(/generation=2/);
    expect(status).toMatch(/seenHere=1/);
    expect(status).toMatch(/newerBy=a \([0-9a-f]{8}\)/);
    const watching = fixture.start(['watch', '--interval', '1s', '--auto-approve', '-f', 'lineage-b.yaml', '--env', 'production'], { env: b.env });
    await watching.waitFor(/\] needs a person \(not applied\): bundle\.repo conflict: repo\.bundle holds generation 2, written by a .* \(run: persist rollback bundle\.repo --to 2\)$/m, 20_000);
    watching.child.kill('SIGTERM');
    expect((await watching.done).code).toBe(0);

    // b saves over it: generation 3; a's generation 2 stays as repo.bundle.1.
    await ok(b.run(['apply', '--env', 'production', '--auto-approve', '--force-push']));
    heads[3] = bOwn;
    // a, unchanged since its update, takes b's generation (its repo kept aside).
    const aPlan = await ok(a.run(['plan', '--env', 'production']));
    expect(aPlan).toMatch(/<= bundle\.repo {2}restore \(local repo kept aside/);
    expect(aPlan).toMatch(/unchanged since generation 2/);
    await ok(a.run(['apply', '--env', 'production', '--auto-approve']));
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(heads[3]);

    const history = JSON.parse(await ok(a.run(['history', '--env', 'production', '--json']))) as { resources: { generations: { generation: number; host: string; current: boolean }[] }[] };
    expect(history.resources[0]!.generations.map((g) => [g.generation, g.host, g.current])).toEqual([
      [3, 'b', true],
      [2, 'a', false],
      [1, 'a', false],
    ]);
    // Every successful update is still there, whole: each generation comes back.
    for (const generation of [1, 2, 3]) {
      await ok(a.run(['rollback', 'bundle.repo', '--to', String(generation), '--env', 'production', '--auto-approve']));
      expect(git(repo, 'rev-parse', 'HEAD')).toBe(heads[generation]);
    }
  }, 180_000);
});
