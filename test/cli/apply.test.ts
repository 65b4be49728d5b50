// `persist apply` through the built CLI on the local backend: approval, convergence, the summary
// line, --json, a no-op that writes nothing, and failures and conflicts that stop only themselves.
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, runOnTerminal, snapshotTree, STACK_LINE, treeChanges } from './helpers.js';

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1);

describe('persist apply: approval', () => {
  it('without a terminal and without --auto-approve: exit 1, a clear message, nothing changed', async () => {
    const f = makeFixture({ links: ['memory'], bundle: true, sync: true });
    const before = snapshotTree(f.dir);
    const result = await f.run(['apply']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('persist: apply needs --auto-approve or a saved plan file when not run on a terminal\n');
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('on a terminal asks for yes: anything else cancels and changes nothing, yes applies', async () => {
    const f = makeFixture({ links: ['memory'] });
    const env = { PERSIST_STATE_DIR: f.stateDir, NO_COLOR: '1' };
    const before = snapshotTree(f.dir);
    const refused = await runOnTerminal(['apply'], f.dir, { env, input: 'no\n' });
    expect(refused.output).toContain("Do you want to perform these actions? Only 'yes' will be accepted:");
    expect(refused.output).toContain('Apply cancelled.');
    expect(refused.code).toBe(1);
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);

    const accepted = await runOnTerminal(['apply'], f.dir, { env, input: 'yes\n' });
    expect(accepted.output).toContain('Apply complete: 2 applied, 0 failed, 0 skipped.');
    // `script` gives a terminal of no size: one whole line per action, not a task list drawn a character a line.
    expect(accepted.output).toMatch(/^✔ 2\. \+ link\.memory {2}create: created the link$/m);
    expect(accepted.code).toBe(0);
    expect(readlinkSync(f.link('memory'))).toBe(f.target('memory'));
  });
});

describe('persist apply --auto-approve', () => {
  it('converges: one line per action, the summary line last, then plan says No changes', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bundle: true, sync: true, file: true });
    mkdirSync(f.link('notes'), { recursive: true });
    writeFileSync(join(f.link('notes'), 'todo.md'), 'keep me\n');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const done = result.stdout.split('\n').filter((l) => /^[✔✖↓] /.test(l));
    expect(done.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
      '✔ 1. <= file.creds  restore',
      '✔ 2. + link.memory  create',
      '✔ 3. ~ link.notes  adopt',
      '✔ 4. ~ sync.state  push',
      '✔ 5. ~ bundle.repo  update',
    ]);
    expect(lastLine(result.stdout)).toBe('Apply complete: 5 applied, 0 failed, 0 skipped.');
    expect(result.stdout).not.toContain('TOKEN=abc');

    // The data is where the spec says.
    expect(readlinkSync(f.link('notes'))).toBe(f.target('notes'));
    expect(readFileSync(join(f.target('notes'), 'todo.md'), 'utf8')).toBe('keep me\n');
    expect(readFileSync(join(f.bucket, 'state', 'app.db'), 'utf8')).toBe('rows\n');
    expect(lstatSync(join(f.workspace, 'creds.env')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(f.bucket, 'bundles', 'repo.bundle'))).toBe(true);
    expect(existsSync(join(f.stateDir, 'apply.lock'))).toBe(false);

    const plan = await f.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('No changes. The machine matches the spec.');
  });

  it('--json prints the plan document with a result per action and the totals', async () => {
    const f = makeFixture({ links: ['memory'], sync: true });
    const result = await f.run(['apply', '--auto-approve', '--json']);
    expect(result.code).toBe(0);
    const doc = JSON.parse(result.stdout);
    expect(doc).toMatchObject({ formatVersion: 1, environment: 'default', summary: { add: 2, change: 1, replace: 0, restore: 0 } });
    expect(doc.actions.map((a: { index: number; address: string; action: string; result: { status: string } }) => [a.index, a.address, a.action, a.result.status])).toEqual([
      [1, 'mount.data', 'mount', 'applied'],
      [2, 'link.memory', 'create', 'applied'],
      [3, 'sync.state', 'push', 'applied'],
    ]);
    expect(doc.actions[1]).toMatchObject({ before: { target: null }, after: { target: f.target('memory') }, result: { message: 'created the link', notes: [] } });
    expect(doc.result).toEqual({ applied: 3, failed: 0, skipped: 0 });

    const noop = JSON.parse((await f.run(['apply', '--auto-approve', '--json'])).stdout);
    expect(noop).toMatchObject({ formatVersion: 1, environment: 'default', actions: [], result: { applied: 0, failed: 0, skipped: 0 } });
  });

  it('with nothing to do writes nothing anywhere (no lock file, no state, no bucket change)', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bundle: true, sync: true, file: true });
    await converge(f);
    const before = snapshotTree(f.dir);
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`persist apply: environment "default" (${f.spec})\n\nNo changes. The machine matches the spec.\nApply complete: 0 applied, 0 failed, 0 skipped.\n`);
    await f.run(['apply', '--auto-approve', '--json']);
    await f.run(['apply']); // nothing to approve either
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });
});

describe('persist apply: failures', () => {
  it('a failed action fails only itself; the others still apply; exit 1', async () => {
    const f = makeFixture({ links: { memory: 'workspace/memory', logs: 'blocked/logs' }, sync: true });
    mkdirSync(f.bucket);
    writeFileSync(join(f.bucket, 'blocked'), 'a regular file where the target folder must be created\n');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^✔ 1\. \+ link\.memory {2}create: created the link$/m);
    expect(result.stdout).toMatch(/^✖ 2\. \+ link\.logs {2}create: .*blocked/m);
    expect(result.stdout).toMatch(/^✔ 3\. ~ sync\.state {2}push: /m);
    expect(result.stdout).toMatch(/^failed: link\.logs: /m);
    expect(result.stdout).not.toMatch(STACK_LINE);
    expect(lastLine(result.stdout)).toBe('Apply complete: 2 applied, 1 failed, 0 skipped.');
    expect(readlinkSync(f.link('memory'))).toBe(f.target('memory'));
    expect(existsSync(f.link('logs'))).toBe(false);
    expect(readFileSync(join(f.bucket, 'blocked'), 'utf8')).toContain('a regular file');
  });

  it('a failed mount skips everything that depends on it', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bucketPath: './blocker/bucket' });
    writeFileSync(join(f.dir, 'blocker'), 'not a folder\n');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✖ 1\. \+ mount\.data {2}mount: /m);
    expect(result.stdout).toContain('↓ 2. + link.memory  create: skipped: it depends on mount.data, which did not apply');
    expect(result.stdout).toContain('↓ 3. + link.notes  create: skipped: it depends on mount.data, which did not apply');
    expect(lastLine(result.stdout)).toBe('Apply complete: 0 applied, 1 failed, 2 skipped.');
    expect(existsSync(f.workspace)).toBe(false);
  });

  it('a conflict is refused and counted failed while independent actions apply', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    mkdirSync(f.workspace);
    writeFileSync(f.link('memory'), 'my notes, not a link\n');
    const result = await f.run(['apply', '--auto-approve']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('1 conflict must be resolved first');
    expect(result.stdout).toMatch(/^✔ 1\. \+ mount\.data {2}mount: /m);
    expect(result.stdout).toMatch(/^✖ 2\. ! link\.memory {2}conflict: refused: .*is a regular file/m);
    expect(result.stdout).toMatch(/^✔ 3\. \+ link\.notes {2}create: created the link$/m);
    expect(lastLine(result.stdout)).toBe('Apply complete: 2 applied, 1 failed, 0 skipped.');
    expect(readFileSync(f.link('memory'), 'utf8')).toBe('my notes, not a link\n');
    expect(readlinkSync(f.link('notes'))).toBe(f.target('notes'));
    // The conflict stays until the user acts; the rest has converged.
    const plan = await f.run(['plan', '--json']);
    expect(JSON.parse(plan.stdout).actions.map((a: { address: string; action: string }) => `${a.address} ${a.action}`)).toEqual(['link.memory conflict']);
  });
});
