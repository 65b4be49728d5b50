// `persist plan` through the built CLI on the local backend: text and JSON output, exit codes,
// --target, and that planning writes nothing anywhere (workspace, bucket, repo, state dir).
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ANSI, commit, converge, makeFixture, runOnTerminal, snapshotTree, STACK_LINE, treeChanges } from './helpers.js';

describe('persist plan (text)', () => {
  it('numbers each action with symbol, address, action, reason and changes, then the summary line', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bundle: true, sync: true, file: true });
    const result = await f.run(['plan']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`persist plan: environment "default" (${f.spec})`);
    const headings = lines.filter((l) => /^\d+\. /.test(l));
    // The bucket folder exists already (it holds creds.env), so there is no mount action.
    expect(headings).toEqual([
      '1. <= file.creds  restore',
      '2. + link.memory  create',
      '3. + link.notes  create',
      '4. ~ sync.state  push',
      '5. ~ bundle.repo  update',
    ]);
    // Each heading is followed by a one-line reason; a link shows its target as the changed value.
    const memory = lines.indexOf('2. + link.memory  create');
    expect(lines[memory + 1]).toBe(`   ${f.link('memory')} does not exist, nor does its target directory`);
    expect(lines[memory + 2]).toBe(`     target: (none) → ${f.target('memory')}`);
    expect(result.stdout.trimEnd().split('\n').at(-1)).toBe('Plan: 2 to add, 2 to change, 0 to replace, 1 to restore.');
    expect(result.stdout).not.toContain('TOKEN=abc');
  });

  it('says No changes after apply, and --detailed-exitcode turns 2 into 0', async () => {
    const f = makeFixture({ links: ['memory'], bundle: true, sync: true, file: true });
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(2);
    await converge(f);
    const clean = await f.run(['plan', '--detailed-exitcode']);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toBe(`persist plan: environment "default" (${f.spec})\n\nNo changes. The machine matches the spec.\n`);
    // Drift again: a new commit means the bundle must be updated.
    commit(join(f.dir, 'repo'), 'next.txt', 'more\n');
    const drift = await f.run(['plan', '--detailed-exitcode']);
    expect(drift.code).toBe(2);
    expect(drift.stdout).toContain('1. ~ bundle.repo  update');
    expect(drift.stdout).toContain('Plan: 0 to add, 1 to change, 0 to replace, 0 to restore.');
  });

  it('exits 1 on a conflict (a regular file where a link belongs) and says what to do', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    mkdirSync(f.workspace);
    writeFileSync(f.link('memory'), 'mine\n');
    for (const flags of [[], ['--detailed-exitcode']]) {
      const result = await f.run(['plan', ...flags]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain('2. ! link.memory  conflict');
      expect(result.stdout).toContain(`${f.link('memory')} is a regular file (5 bytes) where the link belongs`);
      expect(result.stdout.split('where the link belongs').length - 1).toBe(1); // said once, not repeated
      expect(result.stdout).toMatch(/^ {3}fix: move it away/m);
      expect(result.stdout).toContain('1 conflict must be resolved first');
      expect(result.stdout).toContain('3. + link.notes  create');
    }
  });

  it('--target limits the plan to the resource and the mount it needs', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], sync: true });
    const result = await f.run(['plan', '--target', 'link.notes']);
    expect(result.code).toBe(0);
    expect(result.stdout.split('\n').filter((l) => /^\d+\. /.test(l))).toEqual(['1. + mount.data  mount', '2. + link.notes  create']);
    expect(result.stdout).toContain('Plan: 2 to add, 0 to change, 0 to replace, 0 to restore.');

    const json = JSON.parse((await f.run(['plan', '--json', '--target', 'link.notes', '--target', 'sync.state'])).stdout);
    expect(json.actions.map((a: { address: string }) => a.address)).toEqual(['mount.data', 'link.notes', 'sync.state']);
  });

  it('rejects an unknown --target in one line, exit 1, no stack trace', async () => {
    const f = makeFixture({ links: ['memory'] });
    const result = await f.run(['plan', '--target', 'link.nope']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('persist: unknown --target "link.nope"; the spec\'s resources are: link.memory, mount.data\n');
    expect(result.stderr).not.toMatch(STACK_LINE);
  });
});

describe('persist plan --json', () => {
  it('prints one document: formatVersion, environment, actions[index, address, action, reason, before, after], summary', async () => {
    const f = makeFixture({ links: ['memory'], bundle: true, file: true });
    const result = await f.run(['plan', '--json', '--detailed-exitcode']);
    expect(result.code).toBe(2);
    const doc = JSON.parse(result.stdout);
    expect(Object.keys(doc)).toEqual(['formatVersion', 'environment', 'actions', 'summary']);
    expect(doc.formatVersion).toBe(1);
    expect(doc.environment).toBe('default');
    expect(doc.actions.map((a: { index: number; address: string; action: string }) => [a.index, a.address, a.action])).toEqual([
      [1, 'file.creds', 'restore'],
      [2, 'link.memory', 'create'],
      [3, 'bundle.repo', 'update'],
    ]);
    expect(doc.actions[1]).toMatchObject({ reason: `${f.link('memory')} does not exist, nor does its target directory`, before: { target: null }, after: { target: f.target('memory') } });
    for (const action of doc.actions) {
      expect(action).toEqual(expect.objectContaining({ index: expect.any(Number), address: expect.any(String), action: expect.any(String), reason: expect.any(String), before: expect.any(Object), after: expect.any(Object) }));
    }
    expect(doc.summary).toMatchObject({ add: 1, change: 1, replace: 0, restore: 1 });
    expect(result.stdout).not.toContain('TOKEN=abc');

    await converge(f);
    const clean = await f.run(['plan', '--json', '--detailed-exitcode']);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ formatVersion: 1, environment: 'default', actions: [], summary: { add: 0, change: 0, replace: 0, restore: 0 } });
  });
});

describe('persist plan writes nothing', () => {
  it('on a fresh machine (no bucket folder, no state dir yet) and on a drifted one', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bundle: true, sync: true, file: true });
    mkdirSync(join(f.workspace, 'notes'), { recursive: true });
    writeFileSync(join(f.workspace, 'notes', 'todo.md'), 'adopt me\n');
    let before = snapshotTree(f.dir);
    for (const args of [['plan'], ['plan', '--json'], ['plan', '--detailed-exitcode'], ['plan', '--target', 'link.memory']]) {
      await f.run(args);
    }
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);

    await converge(f);
    // Drift of every kind: a link gone, a new commit, a changed sync file, a restored file edited.
    unlinkSync(f.link('memory'));
    commit(join(f.dir, 'repo'), 'b.txt', 'b\n');
    writeFileSync(join(f.dir, 'state', 'app.db'), 'rows and more rows\n');
    writeFileSync(join(f.workspace, 'creds.env'), 'TOKEN=edited\n');
    rmSync(f.target('notes'), { recursive: true });
    before = snapshotTree(f.dir);
    const drift = await f.run(['plan', '--detailed-exitcode']);
    expect(drift.code).toBe(2);
    await f.run(['plan', '--json']);
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });
});

describe('colour', () => {
  it('is on for a terminal, off with NO_COLOR, --no-color or a pipe', async () => {
    const f = makeFixture({ links: ['memory'] });
    const env = { PERSIST_STATE_DIR: f.stateDir };
    const onTerminal = (await runOnTerminal(['plan'], f.dir, { env })).output;
    expect(onTerminal).toContain('mount.data');
    expect(onTerminal).toMatch(ANSI); // the control: colour really is on for a terminal
    const noColorEnv = (await runOnTerminal(['plan'], f.dir, { env: { ...env, NO_COLOR: '1' } })).output;
    expect(noColorEnv).toContain('1. + mount.data  mount');
    expect(noColorEnv).not.toMatch(ANSI);
    const noColorFlag = (await runOnTerminal(['--no-color', 'plan'], f.dir, { env })).output;
    expect(noColorFlag).toContain('1. + mount.data  mount');
    expect(noColorFlag).not.toMatch(ANSI);
    const flagAfterCommand = (await runOnTerminal(['plan', '--no-color'], f.dir, { env })).output;
    expect(flagAfterCommand).toContain('1. + mount.data  mount');
    expect(flagAfterCommand).not.toMatch(ANSI);
    // Piped, without NO_COLOR in the environment at all.
    const piped = await f.run(['plan'], { env: { NO_COLOR: '' } });
    expect(piped.stdout).toContain('1. + mount.data  mount');
    expect(piped.stdout).not.toMatch(ANSI);
  });
});

describe('a state folder that is not a folder', () => {
  it('is refused by plan and apply, naming it and where it comes from: never read as a new machine', async () => {
    const fixture = makeFixture();
    const notAFolder = join(fixture.dir, 'state-file');
    writeFileSync(notAFolder, 'not a folder');
    for (const command of [['plan'], ['apply', '--auto-approve']]) {
      const result = await fixture.run(command, { env: { PERSIST_STATE_DIR: notAFolder } });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`persist: persist's state folder ${notAFolder} is a file, not a folder (it comes from PERSIST_STATE_DIR); move it aside, or point PERSIST_STATE_DIR at a folder\n`);
      expect(result.stdout).toBe('');
    }
  });
});
