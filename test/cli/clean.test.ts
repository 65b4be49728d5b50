// Leftovers: status lists persist's own leftovers in the bucket (conflict copies made by adopt,
// partial files of interrupted writes) with the command that clears them; `persist clean` lists
// them and removes exactly those, after asking (--auto-approve when not on a terminal). A conflict
// copy counts only when adopt recorded it in the bucket and it is unchanged since: a user's file
// named like one, or a copy edited afterwards, is named and left alone.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { leftoverKind } from '../../src/commands/leftovers.js';
import { converge, makeFixture, snapshotTree, treeChanges } from './helpers.js';

describe('leftovers and persist clean', () => {
  it('status lists them with the command; clean removes only what persist made', async () => {
    const f = makeFixture({ links: ['memory'], sync: true, bundle: true });
    // A real conflict copy: the mount already holds notes/a.md, the folder adopted holds another one.
    mkdirSync(join(f.target('memory'), 'notes'), { recursive: true });
    writeFileSync(join(f.target('memory'), 'notes', 'a.md'), 'in the bucket\n');
    mkdirSync(join(f.link('memory'), 'notes'), { recursive: true });
    writeFileSync(join(f.link('memory'), 'notes', 'a.md'), 'local\n');
    await converge(f);
    const copies = readdirSync(join(f.target('memory'), 'notes')).filter((name) => name.startsWith('a.md.persist-conflict-'));
    expect(copies).toHaveLength(1);
    const conflict = join(f.target('memory'), 'notes', copies[0]!);
    expect(readFileSync(conflict, 'utf8')).toBe('local\n');
    const partial = join(f.bucket, 'state', '.app.db.persist-tmp-0123456789ab');
    const adoptPartial = join(f.target('memory'), '.b.md.persist-partial-4f2a00c0ffee');
    const bundleTemp = join(f.bucket, 'bundles', '.repo.bundle.persist-tmp-feedbeef0000');
    for (const path of [partial, adoptPartial, bundleTemp]) writeFileSync(path, 'left over\n');
    // Look alike, but not persist's: never listed, never removed.
    const mine = [
      join(f.target('memory'), 'persist-conflict-notes.md'),
      join(f.target('memory'), 'c.md.persist-conflict-draft'),
      join(f.target('memory'), 'tmp.persist-tmp-x'),
      join(f.target('memory'), '.d.md.persist-tmp-draft'),
      join(f.target('memory'), '.e.md.persist-partial-mine'),
      // An agent's own file that is named exactly like a conflict copy (the QA case): persist did not make it.
      join(f.target('memory'), 'notes', 'report.persist-conflict-20250505T101010Z'),
    ];
    for (const path of mine) writeFileSync(path, 'mine\n');

    const status = await f.run(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(
      [
        '4 leftovers of persist in the bucket:',
        `  ${bundleTemp}  (partial file of an interrupted write)`,
        `  ${partial}  (partial file of an interrupted write)`,
        `  ${adoptPartial}  (partial file of an interrupted write)`,
        `  ${conflict}  (conflict copy made by adopt)`,
        `Remove them with: persist clean -f ${f.spec}`,
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await f.run(['status', '--json'])).stdout) as { leftovers: { kind: string; path: string }[]; clean: string };
    expect(json.leftovers.map((l) => [l.path, l.kind])).toEqual([
      [bundleTemp, 'partial file'],
      [partial, 'partial file'],
      [adoptPartial, 'partial file'],
      [conflict, 'conflict copy'],
    ]);
    expect(json.clean).toBe(`persist clean -f ${f.spec}`);

    // Not on a terminal and no --auto-approve: listed, nothing removed.
    const before = snapshotTree(f.dir);
    const refused = await f.run(['clean']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('4 leftovers of persist in the bucket:');
    expect(refused.stderr).toContain('clean needs --auto-approve when not run on a terminal');
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);

    const cleaned = await f.run(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toContain('Clean complete: removed 4 files.\n');
    expect(cleaned.stdout).toContain(`${join(f.target('memory'), 'notes', 'report.persist-conflict-20250505T101010Z')}: looks like a conflict copy but persist did not make it (or it changed since): left alone\n`);
    expect(cleaned.stdout).not.toContain('report.persist-conflict-20250505T101010Z  (conflict copy');
    for (const path of [conflict, partial, adoptPartial, bundleTemp]) expect(existsSync(path)).toBe(false);
    for (const path of mine) expect(existsSync(path)).toBe(true);
    expect((await f.run(['status'])).stdout).not.toContain('leftover');
    expect((await f.run(['clean', '--auto-approve'])).stdout).toContain('No leftovers of persist in the bucket.\n');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
    // The copy's record went with it.
    expect(readdirSync(join(f.bucket, '.persist-conflicts'))).toEqual([]);
  });

  it('a conflict copy edited after adopt made it is the user\'s: left alone', async () => {
    const f = makeFixture({ links: ['memory'] });
    mkdirSync(f.target('memory'), { recursive: true });
    writeFileSync(join(f.target('memory'), 'b.md'), 'in the bucket\n');
    mkdirSync(f.link('memory'), { recursive: true });
    writeFileSync(join(f.link('memory'), 'b.md'), 'local\n');
    await converge(f);
    const name = readdirSync(f.target('memory')).find((entry) => entry.startsWith('b.md.persist-conflict-'));
    expect(name).toBeDefined();
    const copy = join(f.target('memory'), name!);
    // Recorded: clean would remove it now (status lists it) ...
    expect((await f.run(['status'])).stdout).toContain(`  ${copy}  (conflict copy made by adopt)`);
    // ... but the agent edits it through the link (same size too: the hash tells).
    writeFileSync(join(f.link('memory'), name!), 'LOCAL\n');
    const status = await f.run(['status']);
    expect(status.stdout).not.toContain('leftover');
    const cleaned = await f.run(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toContain(`${copy}: looks like a conflict copy but persist did not make it (or it changed since): left alone\n`);
    expect(cleaned.stdout).toContain('No leftovers of persist in the bucket.\n');
    expect(readFileSync(copy, 'utf8')).toBe('LOCAL\n');
  });

  it('knows persist names from look-alikes', () => {
    expect(leftoverKind('a.md.persist-conflict-20261201T101010Z')).toBe('conflict copy');
    expect(leftoverKind('a.md.persist-conflict-20261201T101010Z-3')).toBe('conflict copy');
    expect(leftoverKind('.a.md.persist-tmp-0123456789ab')).toBe('partial file');
    expect(leftoverKind('.a.md.persist-tmp-0123')).toBeNull(); // a user's name: persist's carry 12 random hex digits
    expect(leftoverKind('.a.md.persist-partial-0123456789ab')).toBe('partial file');
    expect(leftoverKind('.a.md.persist-partial-ab')).toBeNull();
    expect(leftoverKind('a.md.persist-conflict-draft')).toBeNull();
    expect(leftoverKind('a.persist-tmp-x')).toBeNull(); // temporaries start with a dot
    expect(leftoverKind('notes.md')).toBeNull();
  });
});
