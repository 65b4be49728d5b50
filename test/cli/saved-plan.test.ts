// `persist plan --out FILE` then `persist apply FILE`: the round trip, and every way a saved plan
// is refused (stale, tampered, truncated, another environment, a changed spec) with one clear
// line, exit 1 and nothing changed.
import { appendFileSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, snapshotTree, STACK_LINE, treeChanges, type Fixture } from './helpers.js';

/** Apply `planFile` and expect a refusal: exit 1, exactly one line on stderr, nothing changed. */
async function expectRefused(f: Fixture, args: string[]): Promise<string> {
  const before = snapshotTree(f.dir);
  const result = await f.run(['apply', ...args]);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).not.toMatch(STACK_LINE);
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  return result.stderr.trimEnd();
}

describe('plan --out / apply PLANFILE', () => {
  it('round trip: the saved plan applies without --auto-approve and the machine converges', async () => {
    const f = makeFixture({ links: ['memory', 'notes'], bundle: true, sync: true, file: true });
    const saved = await f.run(['plan', '--out', 'boot.plan']);
    expect(saved.code).toBe(0);
    expect(saved.stdout).toContain('Saved the plan to boot.plan; apply it with `persist apply boot.plan`.');
    expect(statSync(join(f.dir, 'boot.plan')).mode & 0o777).toBe(0o600);

    const applied = await f.run(['apply', 'boot.plan']);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('Apply complete: 5 applied, 0 failed, 0 skipped.');
    expect(readFileSync(join(f.workspace, 'creds.env'), 'utf8')).toBe('TOKEN=abc\n');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('refuses a stale plan and names the changed resource (a link directory made by hand)', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    await converge(f);
    unlinkSync(f.link('memory'));
    unlinkSync(f.link('notes'));
    expect((await f.run(['plan', '--out', 'p.plan'])).code).toBe(0);
    mkdirSync(f.link('memory'));
    const message = await expectRefused(f, ['p.plan']);
    expect(message).toBe('persist: p.plan: the plan is stale; these resources changed since it was made: link.memory. Run `persist plan --out` again.');
  });

  it('refuses a stale adopt when a file was added to the adopted directory', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    mkdirSync(f.link('notes'), { recursive: true });
    writeFileSync(join(f.link('notes'), 'a.md'), 'a\n');
    mkdirSync(f.bucket);
    const planned = await f.run(['plan', '--out', 'p.plan']);
    expect(planned.stdout).toContain('~ link.notes  adopt');
    writeFileSync(join(f.link('notes'), 'b.md'), 'written after the plan\n');
    const message = await expectRefused(f, ['p.plan']);
    expect(message).toContain('these resources changed since it was made: link.notes.');
    // A fresh plan then applies, and nothing of the directory is lost.
    expect((await f.run(['plan', '--out', 'p.plan'])).code).toBe(0);
    expect((await f.run(['apply', 'p.plan'])).code).toBe(0);
    expect(readFileSync(join(f.link('notes'), 'b.md'), 'utf8')).toBe('written after the plan\n');
    expect(readFileSync(join(f.target('notes'), 'a.md'), 'utf8')).toBe('a\n');
  });

  it('refuses a tampered plan (one field edited)', async () => {
    const f = makeFixture({ links: ['memory'] });
    await f.run(['plan', '--out', 'p.plan']);
    const file = join(f.dir, 'p.plan');
    const plan = JSON.parse(readFileSync(file, 'utf8'));
    plan.actions[1].changes[0].after = '/etc';
    writeFileSync(file, JSON.stringify(plan, null, 2));
    expect(await expectRefused(f, ['p.plan'])).toBe(
      'persist: p.plan: the saved plan was modified after it was written (checksum mismatch); run `persist plan --out` again',
    );
  });

  it('refuses a truncated plan and a file that is not a plan', async () => {
    const f = makeFixture({ links: ['memory'] });
    await f.run(['plan', '--out', 'p.plan']);
    const file = join(f.dir, 'p.plan');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    expect(await expectRefused(f, ['p.plan'])).toBe('persist: p.plan: not a saved plan (it is not valid JSON; was it truncated?)');
    writeFileSync(file, '{"formatVersion": 1}\n');
    expect(await expectRefused(f, ['p.plan'])).toContain('p.plan: not a saved plan');
    expect(await expectRefused(f, ['missing.plan'])).toBe('persist: missing.plan: cannot read the saved plan (no such file)');
  });

  it('refuses a plan made for another environment', async () => {
    const f = makeFixture({
      links: ['memory'],
      extra: ['environments:', '  dev: {}', '  prod:', '    buckets:', '      data:', '        name: test-data-prod', '        mount: { path: ./bucket-prod }'].join('\n'),
    });
    expect((await f.run(['plan', '--env', 'dev', '--out', 'dev.plan'])).code).toBe(0);
    expect(await expectRefused(f, ['dev.plan', '--env', 'prod'])).toBe('persist: dev.plan: the plan was made for environment "dev", not "prod"');
    // Without --env the plan's own environment is used.
    const applied = await f.run(['apply', 'dev.plan'], { env: { ENVIRONMENT: 'prod' } });
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain('environment "dev"');
  });

  it('refuses a plan after the spec changed', async () => {
    const f = makeFixture({ links: ['memory'] });
    await f.run(['plan', '--out', 'p.plan']);
    appendFileSync(f.spec, '  notes: workspace/notes\n');
    expect(await expectRefused(f, ['p.plan'])).toBe(
      `persist: p.plan: the spec ${f.spec} changed since the plan was made; run \`persist plan --out\` again`,
    );
  });

  it('refuses --target with a saved plan', async () => {
    const f = makeFixture({ links: ['memory'] });
    await f.run(['plan', '--out', 'p.plan']);
    expect(await expectRefused(f, ['p.plan', '--target', 'link.memory'])).toContain('--target cannot be combined with a saved plan');
  });
});

describe('plan --out where no file can be written', () => {
  it('names the path and what was expected (before: internal error ENOENT / EISDIR)', async () => {
    const f = makeFixture({ links: ['memory'] });
    const missing = await f.run(['plan', '--out', 'no/such/folder/p.plan']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('persist: --out no/such/folder/p.plan: cannot write the saved plan (its folder does not exist)\n');
    const folder = await f.run(['plan', '--out', '.']);
    expect(folder.code).toBe(1);
    expect(folder.stderr).toBe('persist: --out .: cannot write the saved plan (it is a directory, expected a file name)\n');
  });
});
