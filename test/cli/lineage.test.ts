// Lineage through the built CLI, on the local backend with real files and sqlite3: a push never
// overwrites what this machine has not seen; history and rollback. Each case fails on the code
// before lineage (it pushed the defaults, development's data, the stale copy).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeFixture, snapshotTree, type Fixture } from './helpers.js';

const SPEC = [
  'version: 1',
  'workspace: ./ws',
  'buckets:',
  '  data:',
  '    name: moltbot-data-${environment}',
  '    mount:',
  '      backend: local',
  '      path: ./bucket-${environment}',
  // A short lease, so that these tests can make what lineage guards against: a machine whose lease
  // expired (it stopped renewing it) while another took over.
  '    lease: { ttl: 1s }',
  'syncs:',
  '  clawdbot:',
  '    from: ./clawdbot',
  '    to: clawdbot',
  '    delete: true',
  '    exclude: ["*.lock"]',
  'environments:',
  '  development: {}',
  '  production: {}',
  '',
].join('\n');

interface Machine {
  run(args: string[]): ReturnType<Fixture['run']>;
  state: string;
}

function setup(): { fixture: Fixture; local: string; bucket: (env: string) => string; machine: (name: string) => Machine } {
  const fixture = makeFixture();
  writeFileSync(join(fixture.dir, 'lineage.yaml'), SPEC);
  mkdirSync(join(fixture.dir, 'ws'), { recursive: true });
  const machine = (name: string): Machine => {
    const state = join(fixture.dir, `state-${name}`);
    return { state, run: (args) => fixture.run([...args, '-f', 'lineage.yaml'], { env: { PERSIST_STATE_DIR: state, HOSTNAME: name } }) };
  };
  return { fixture, local: join(fixture.dir, 'clawdbot'), bucket: (env) => join(fixture.dir, `bucket-${env}`), machine };
}

function sqlite(db: string, sql: string): string {
  return execFileSync('sqlite3', [db, sql], { encoding: 'utf8' }).trim();
}

function write(root: string, path: string, text: string): void {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), text);
}

function contents(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) visit(join(dir, entry.name), rel);
      else out[rel] = readFileSync(join(dir, entry.name)).toString('base64');
    }
  };
  visit(root, '');
  return out;
}

/** Past the 1 s lease of the machine that wrote last: the next machine takes the bucket over. */
function leaseExpires(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1_200));
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

async function ok(result: Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<string> {
  const done = await result;
  if (done.code !== 0) throw new Error(`exit ${done.code}\n${done.stdout}\n${done.stderr}`);
  return done.stdout;
}

describe('lineage: a push never overwrites what this machine has not seen', () => {
  it('a fresh container whose folder holds template defaults restores the backup (the defaults kept aside), never pushes', async () => {
    const { fixture, local, bucket, machine } = setup();
    const first = machine('old');
    mkdirSync(join(local, 'devices'), { recursive: true });
    sqlite(join(local, 'clawdbot.db'), 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 203) INSERT INTO t(v) SELECT printf("row %d", x) FROM c;');
    write(local, 'devices/paired.json', '{"devices":[{"id":"phone","token":"t1"}]}\n');
    write(local, 'clawdbot.json', '{"agent":"configured"}\n');
    await ok(first.run(['apply', '--env', 'production', '--auto-approve']));
    const mirror = join(bucket('production'), 'clawdbot');
    const backup = snapshotTree(mirror);
    const backupDb = readFileSync(join(mirror, 'clawdbot.db'));

    // The old container stops (its shutdown releases the lease); a new one: onboarding wrote its
    // template before anything was restored.
    await ok(first.run(['shutdown', '--env', 'production']));
    rmSync(local, { recursive: true });
    mkdirSync(join(local, 'devices'), { recursive: true });
    sqlite(join(local, 'clawdbot.db'), 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);');
    write(local, 'devices/paired.json', '{"devices":[]}\n');
    write(local, 'clawdbot.json', '{"agent":"template"}\n');
    const fresh = machine('new');
    const plan = await ok(fresh.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/<= sync\.clawdbot {2}restore \(local files kept aside: 3 differ\)/);
    expect(plan).not.toMatch(/sync\.clawdbot {2}push/);
    const applied = await ok(fresh.run(['apply', '--env', 'production', '--auto-approve']));
    expect(applied).toMatch(/kept aside in .*\.persist-backups/);

    // The backup survived byte for byte, and the machine ends with it.
    expect(snapshotTree(mirror)).toEqual(backup);
    expect(readFileSync(join(local, 'clawdbot.db')).equals(backupDb)).toBe(true);
    expect(sqlite(join(local, 'clawdbot.db'), 'SELECT count(*) FROM t')).toBe('203');
    expect(readFileSync(join(local, 'devices/paired.json'), 'utf8')).toContain('phone');
    // The defaults are kept aside in the backups.
    const backups = join(fixture.dir, 'ws', '.persist-backups');
    const [aside] = readdirSync(backups).filter((name) => name.startsWith('sync.clawdbot-'));
    expect(readFileSync(join(backups, aside!, 'clawdbot.json'), 'utf8')).toContain('template');
    expect((await fresh.run(['plan', '--env', 'production', '--detailed-exitcode'])).code).toBe(0);
  }, 60_000);

  it('a mirror made by hand (no manifest) that this folder never synced with is restored, the local files kept aside, never pushed over', async () => {
    const { fixture, local, bucket, machine } = setup();
    const mirror = join(bucket('production'), 'clawdbot');
    write(mirror, 'clawdbot.json', '{"agent":"configured by hand"}\n');
    write(mirror, 'devices/paired.json', '{"devices":["AAAA"]}\n');
    const before = snapshotTree(mirror);
    // Onboarding defaults: one file of another size, one of the same size (a listing cannot tell it apart).
    write(local, 'clawdbot.json', '{"agent":"template"}\n');
    write(local, 'devices/paired.json', '{"devices":["BBBB"]}\n');
    const one = machine('new');
    const plan = await ok(one.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/<= sync\.clawdbot {2}restore \(local files kept aside: 2 may differ\)/);
    expect(plan).toMatch(/no manifest \(made by hand or by another tool\).*never pushed over/);
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    // Every file of the mirror as it was (the restore only added the manifest it wrote).
    const files = (tree: Map<string, string>) => [...tree].filter(([path, entry]) => entry.startsWith('file') && !path.startsWith('/.persist-sync'));
    expect(files(snapshotTree(mirror))).toEqual(files(before));
    expect(files(before)).toHaveLength(2);
    expect(readFileSync(join(local, 'devices/paired.json'), 'utf8')).toContain('AAAA');
    expect(readFileSync(join(local, 'clawdbot.json'), 'utf8')).toContain('by hand');
    const backups = join(fixture.dir, 'ws', '.persist-backups');
    const [aside] = readdirSync(backups).filter((name) => name.startsWith('sync.clawdbot-'));
    expect(readFileSync(join(backups, aside!, 'devices/paired.json'), 'utf8')).toContain('BBBB');
    expect((await one.run(['plan', '--env', 'production', '--detailed-exitcode'])).code).toBe(0);
  }, 60_000);

  it('development then production on one machine: nothing of development reaches production, development unchanged', async () => {
    const { local, bucket, machine } = setup();
    const one = machine('box');
    write(local, 'clawdbot.json', '{"env":"development"}\n');
    write(local, 'devices/paired.json', '{"devices":["dev-phone"]}\n');
    await ok(one.run(['apply', '--env', 'development', '--auto-approve']));
    const development = snapshotTree(bucket('development'));

    // The machine is switched to production, whose bucket is still empty.
    const plan = await one.run(['plan', '--env', 'production']);
    expect(plan.stdout).toMatch(/sync\.clawdbot {2}conflict/);
    expect(plan.stdout).toMatch(/holds data of bucket moltbot-data-development/);
    expect(plan.stdout).toMatch(/move the folder aside/);
    const applied = await one.run(['apply', '--env', 'production', '--auto-approve']);
    expect(applied.code).toBe(1);
    expect(existsSync(join(bucket('production'), 'clawdbot'))).toBe(false);
    expect(snapshotTree(bucket('development'))).toEqual(development);

    // Starting clean as the conflict says: the folder moved aside, production starts empty.
    execFileSync('mv', [local, `${local}.development`]);
    const clean = await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    expect(clean).toMatch(/starts clean/);
    write(local, 'clawdbot.json', '{"env":"production"}\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    expect(readFileSync(join(bucket('production'), 'clawdbot', 'clawdbot.json'), 'utf8')).toContain('production');
    expect(existsSync(join(bucket('production'), 'clawdbot', 'devices'))).toBe(false);
    expect(snapshotTree(bucket('development'))).toEqual(development);
  }, 60_000);

  it('two machines on one bucket, pushes interleaved: every push that succeeded stays in the store; the other says why and what to run', async () => {
    const { fixture, local, machine } = setup();
    const a = machine('a');
    const b = machine('b');
    const localB = join(fixture.dir, 'clawdbot-b');
    // Machine b has its own local folder: the same spec with another `from`.
    writeFileSync(join(fixture.dir, 'lineage-b.yaml'), SPEC.replace('from: ./clawdbot', 'from: ./clawdbot-b'));
    const runB = (args: string[]) => fixture.run([...args, '-f', 'lineage-b.yaml'], { env: { PERSIST_STATE_DIR: b.state, HOSTNAME: 'b' } });

    write(local, 'notes.md', 'a1\n');
    await ok(a.run(['apply', '--env', 'production', '--auto-approve'])); // generation 1
    await leaseExpires();
    await ok(runB(['apply', '--env', 'production', '--auto-approve'])); // b restores generation 1
    expect(readFileSync(join(localB, 'notes.md'), 'utf8')).toBe('a1\n');

    write(local, 'notes.md', 'a2\n');
    await leaseExpires();
    await ok(a.run(['apply', '--env', 'production', '--auto-approve'])); // generation 2, by a
    write(localB, 'notes.md', 'b2\n');
    write(localB, 'b-only.md', 'b\n');
    await leaseExpires();
    const refused = await runB(['apply', '--env', 'production', '--auto-approve']);
    expect(refused.code).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(/generation 2, written by a \([0-9a-f]{8}\)/);
    expect(refused.stdout + refused.stderr).toContain('persist rollback sync.clawdbot --to 2');
    expect(refused.stdout + refused.stderr).toContain('--force-push');
    const mirror = join(fixture.dir, 'bucket-production', 'clawdbot');
    expect(readFileSync(join(mirror, 'notes.md'), 'utf8')).toBe('a2\n');

    // status on b: the store's generation, the one b has, and who wrote the newer one.
    const status = await ok(runB(['status', '--env', 'production']));
    expect(status).toMatch(/generation=2/);
    expect(status).toMatch(/seenHere=1/);
    expect(status).toMatch(/newerBy=a \([0-9a-f]{8}\)/);

    // watch on b pushes nothing over it: it logs the conflict once a round with the one command.
    const watching = fixture.start(['watch', '--interval', '1s', '--auto-approve', '-f', 'lineage-b.yaml', '--env', 'production'], { env: { PERSIST_STATE_DIR: b.state, HOSTNAME: 'b' } });
    await watching.waitFor(/\] needs a person \(not applied\): sync\.clawdbot conflict: the store holds generation 2, written by a .* \(run: persist rollback sync\.clawdbot --to 2\)$/m, 15_000);
    watching.child.kill('SIGTERM');
    expect((await watching.done).code).toBe(0);
    expect(readFileSync(join(mirror, 'notes.md'), 'utf8')).toBe('a2\n');

    // b pushes over it: generation 3; a's generation 2 stays in history.
    await ok(runB(['apply', '--env', 'production', '--auto-approve', '--force-push']));
    // a, unchanged since its push, takes b's generation (fast-forward, nothing of a's lost).
    await leaseExpires();
    const aPlan = await ok(a.run(['plan', '--env', 'production']));
    expect(aPlan).toMatch(/sync\.clawdbot {2}restore/);
    await ok(a.run(['apply', '--env', 'production', '--auto-approve']));
    expect(readFileSync(join(local, 'notes.md'), 'utf8')).toBe('b2\n');

    const history = JSON.parse(await ok(a.run(['history', '--env', 'production', '--json']))) as {
      resources: { address: string; generations: { generation: number; host: string; current: boolean; parent: number | null }[] }[];
    };
    const generations = history.resources.find((r) => r.address === 'sync.clawdbot')!.generations;
    expect(generations.map((g) => [g.generation, g.host, g.current])).toEqual([
      [3, 'b', true],
      [2, 'a', false],
      [1, 'a', false],
    ]);
    // Every successful push is still there: a's generation 2 comes back whole.
    await ok(a.run(['rollback', 'sync.clawdbot', '--to', '2', '--env', 'production', '--auto-approve']));
    expect(readFileSync(join(local, 'notes.md'), 'utf8')).toBe('a2\n');
    expect(existsSync(join(local, 'b-only.md'))).toBe(false);
  }, 90_000);

  it('three saves, history lists them, rollback to the first restores it, rolling forward to the third works after', async () => {
    const { fixture, local, machine } = setup();
    const one = machine('box');
    const saves: Record<string, string>[] = [];
    write(local, 'a.md', 'one\n');
    write(local, 'keep/x.md', 'x\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    saves.push(contents(local));
    write(local, 'a.md', 'two\n');
    write(local, 'b.md', 'added in two\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    saves.push(contents(local));
    write(local, 'a.md', 'three\n');
    rmSync(join(local, 'b.md'));
    write(local, 'c.md', 'added in three\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    saves.push(contents(local));

    const text = await ok(one.run(['history', '--env', 'production']));
    expect(text).toMatch(/\* 3 .*box \([0-9a-f]{8}\)\s+3 files/);
    expect(text).toMatch(/ {3}1 /);
    const json = JSON.parse(await ok(one.run(['history', '--env', 'production', '--json']))) as { formatVersion: number; resources: { generations: { generation: number; files: number; current: boolean }[] }[] };
    expect(json.formatVersion).toBe(1);
    expect(json.resources[0]!.generations.map((g) => [g.generation, g.files, g.current])).toEqual([
      [3, 3, true],
      [2, 3, false],
      [1, 2, false],
    ]);

    // Without a terminal, rollback needs --auto-approve.
    const unapproved = await one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production']);
    expect(unapproved.code).toBe(1);
    expect(unapproved.stderr).toMatch(/--auto-approve/);
    expect(contents(local)).toEqual(saves[2]);

    const rolled = await ok(one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production', '--auto-approve']));
    expect(rolled).toMatch(/rolled back to generation 1/);
    expect(contents(local)).toEqual(saves[0]);
    const backups = join(fixture.dir, 'ws', '.persist-backups');
    const [aside] = readdirSync(backups);
    expect(contents(join(backups, aside!))).toEqual(saves[2]);

    // Rolling forward to the third works after that.
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '3', '--env', 'production', '--auto-approve']));
    expect(contents(local)).toEqual(saves[2]);

    // Back to the first and saved: a new generation 4 whose parent is 3; 3 stays restorable.
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production', '--auto-approve']));
    const plan = await ok(one.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/sync\.clawdbot {2}push/);
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    const after = JSON.parse(await ok(one.run(['history', '--env', 'production', '--json']))) as { resources: { generations: { generation: number; parent: number | null; current: boolean }[] }[] };
    expect(after.resources[0]!.generations[0]).toMatchObject({ generation: 4, parent: 3, current: true });
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '3', '--env', 'production', '--auto-approve']));
    expect(contents(local)).toEqual(saves[2]);
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '2', '--env', 'production', '--auto-approve']));
    expect(contents(local)).toEqual(saves[1]);
  }, 90_000);

  it('a rollback to a smaller generation that the agent then writes to is pushed (the files the rollback left out are not a shrink); losing the generation\'s own files still is one', async () => {
    const { local, machine } = setup();
    const one = machine('box');
    write(local, 'a.md', 'one\n');
    write(local, 'keep/x.md', 'x\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    for (let i = 0; i < 10; i++) write(local, `more/n${i}.md`, `n${i}\n`);
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production', '--auto-approve']));
    // The agent goes on: one new file. Before, a conflict ("lacks 10 of the mirror's 12 files ...
    // looks fresh or partial") whose fix restored the generation rolled back from.
    write(local, 'agent.md', 'written after the rollback\n');
    const plan = await ok(one.run(['plan', '--env', 'production']));
    expect(plan).toMatch(/sync\.clawdbot {2}push/);
    expect(plan).not.toContain('conflict');
    // Had the agent also lost the generation's own files, the guard would still stop the push.
    const lost = join(local, '..', 'lost-a.md');
    execFileSync('mv', [join(local, 'a.md'), lost]);
    rmSync(join(local, 'keep'), { recursive: true });
    const refused = await one.run(['plan', '--env', 'production']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('looks fresh or partial');
    execFileSync('mv', [lost, join(local, 'a.md')]);
    write(local, 'keep/x.md', 'x\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    const after = JSON.parse(await ok(one.run(['history', '--env', 'production', '--json']))) as { resources: { generations: { generation: number; files: number; parent: number | null; current: boolean }[] }[] };
    expect(after.resources[0]!.generations[0]).toMatchObject({ generation: 3, files: 3, parent: 2, current: true });
    expect(await ok(one.run(['plan', '--env', 'production']))).toMatch(/No changes/);
  }, 90_000);

  it('rollback brings back the folders of the generation with their modes, empty ones too', async () => {
    const { local, machine } = setup();
    const one = machine('box');
    write(local, 'private/key.txt', 'k1\n');
    mkdirSync(join(local, 'empty'));
    chmodSync(join(local, 'private'), 0o700);
    chmodSync(join(local, 'empty'), 0o750);
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    write(local, 'private/key.txt', 'k2\n');
    chmodSync(join(local, 'private'), 0o755);
    rmSync(join(local, 'empty'), { recursive: true });
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));

    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production', '--auto-approve']));
    expect(readFileSync(join(local, 'private/key.txt'), 'utf8')).toBe('k1\n');
    expect(statSync(join(local, 'private')).mode & 0o777).toBe(0o700);
    expect(statSync(join(local, 'empty')).mode & 0o777).toBe(0o750);
    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '2', '--env', 'production', '--auto-approve']));
    expect(statSync(join(local, 'private')).mode & 0o777).toBe(0o755);
    expect(existsSync(join(local, 'empty'))).toBe(false);
  }, 60_000);
});

describe('lineage and what is not part of the sync', () => {
  it("rollback leaves the sync's excluded files in the folder; only the others are kept aside", async () => {
    const { fixture, local, machine } = setup();
    const one = machine('box');
    write(local, 'a.md', 'one\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    write(local, 'a.md', 'two\n');
    await ok(one.run(['apply', '--env', 'production', '--auto-approve']));
    // The agent holds its locks (excluded: `*.lock`), at the top and deeper down.
    write(local, 'agent.lock', 'pid 42\n');
    write(local, 'deep/w.lock', 'pid 43\n');

    await ok(one.run(['rollback', 'sync.clawdbot', '--to', '1', '--env', 'production', '--auto-approve']));
    expect(contents(local)).toEqual({ 'a.md': b64('one\n'), 'agent.lock': b64('pid 42\n'), 'deep/w.lock': b64('pid 43\n') });
    const backups = join(fixture.dir, 'ws', '.persist-backups');
    const [aside] = readdirSync(backups);
    expect(contents(join(backups, aside!))).toEqual({ 'a.md': b64('two\n') });
  }, 60_000);

  it('history counts the files the store holds: one that changed at every read (never stored) is not among them', async () => {
    const f = makeFixture({ sync: true }); // ./state/app.db: 5 bytes
    const busy = join(f.dir, 'state', 'busy.json');
    // A writer that holds busy.json open and rewrites 200 kB into it every 15 ms: never read stably.
    const script =
      `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(busy)},'w');let n=0;` +
      `setInterval(()=>{const b=String(n++).padEnd(200000,'x');fs.ftruncateSync(fd,0);fs.writeSync(fd,b,0)},15);`;
    const writer = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    onTestFinished(() => void writer.kill('SIGKILL'));
    while (!existsSync(busy)) await new Promise((resolve) => setTimeout(resolve, 20));

    const applied = await ok(f.run(['apply', '--auto-approve']));
    expect(applied).toContain('1 file changed at every read and was not stored');
    const record = JSON.parse(readFileSync(join(f.bucket, 'state', '.persist-sync', 'generations', '1.json'), 'utf8')) as { files: number; bytes: number };
    expect(record).toMatchObject({ files: 1, bytes: 5 });
    const history = JSON.parse(await ok(f.run(['history', '--json']))) as { resources: { generations: { generation: number; files: number; bytes: number }[] }[] };
    expect(history.resources[0]!.generations.map((g) => [g.generation, g.files, g.bytes])).toEqual([[1, 1, 5]]);
    expect(await ok(f.run(['history']))).toMatch(/\* 1 .*\s1 file\s+5 B/);
  }, 60_000);
});

describe('lineage of bundles', () => {
  it("development's branches never land in production's bundle; a second machine's update over a newer bundle is a conflict", async () => {
    const { fixture, machine } = setup();
    const spec = SPEC.replace('syncs:', 'bundles:\n  repo:\n    repo: ./repo\n    file: repo.bundle\nsyncs:');
    writeFileSync(join(fixture.dir, 'lineage.yaml'), spec);
    const repo = join(fixture.dir, 'repo');
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
    mkdirSync(repo);
    git('init', '-q', '-b', 'main');
    write(repo, 'a.txt', 'dev\n');
    git('add', '.');
    git('commit', '-qm', 'dev work');
    git('branch', 'dev-feature');
    const one = machine('box');
    await ok(one.run(['apply', '--env', 'development', '--auto-approve', '--target', 'bundle.repo']));
    expect(existsSync(join(fixture.dir, 'bucket-development', 'repo.bundle'))).toBe(true);

    const plan = await one.run(['plan', '--env', 'production', '--target', 'bundle.repo']);
    expect(plan.stdout).toMatch(/bundle\.repo {2}conflict/);
    expect(plan.stdout).toMatch(/holds the repo of bucket moltbot-data-development/);
    const applied = await one.run(['apply', '--env', 'production', '--auto-approve', '--target', 'bundle.repo']);
    expect(applied.code).toBe(1);
    expect(existsSync(join(fixture.dir, 'bucket-production', 'repo.bundle'))).toBe(false);

    // Two machines on development's bundle: the second saw generation 1, the first wrote 2.
    const other = machine('other');
    const otherRepo = join(fixture.dir, 'repo-other');
    writeFileSync(join(fixture.dir, 'lineage-other.yaml'), spec.replace('repo: ./repo', 'repo: ./repo-other'));
    const runOther = (args: string[]) => fixture.run([...args, '-f', 'lineage-other.yaml'], { env: { PERSIST_STATE_DIR: other.state, HOSTNAME: 'other' } });
    await leaseExpires();
    await ok(runOther(['apply', '--env', 'development', '--auto-approve', '--target', 'bundle.repo'])); // restores generation 1
    expect(existsSync(join(otherRepo, 'a.txt'))).toBe(true);
    write(repo, 'b.txt', 'more\n');
    git('add', '.');
    git('commit', '-qm', 'more');
    await leaseExpires();
    await ok(one.run(['apply', '--env', 'development', '--auto-approve', '--target', 'bundle.repo'])); // generation 2
    execFileSync('git', ['-C', otherRepo, 'branch', 'other-work'], { encoding: 'utf8' });
    await leaseExpires();
    const refused = await runOther(['apply', '--env', 'development', '--auto-approve', '--target', 'bundle.repo']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/holds generation 2, written by box \([0-9a-f]{8}\)/);
    expect(refused.stdout).toContain('--force-push');
    const history = JSON.parse(await ok(one.run(['history', '--env', 'development', '--json', '--target', 'bundle.repo']))) as { resources: { generations: { generation: number; host: string; current: boolean }[] }[] };
    expect(history.resources[0]!.generations.map((g) => [g.generation, g.host, g.current])).toEqual([
      [2, 'box', true],
      [1, 'box', false],
    ]);
  }, 90_000);
});
