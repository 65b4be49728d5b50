// Leftovers: status lists persist's own leftovers in the bucket (conflict copies made by adopt,
// partial files of interrupted writes) with the command that clears them; `persist clean` lists
// them and removes exactly those, after asking (--auto-approve when not on a terminal).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { leftoverKind } from '../../src/commands/leftovers.js';
import { converge, makeFixture, snapshotTree, treeChanges } from './helpers.js';

describe('leftovers and persist clean', () => {
  it('status lists them with the command; clean removes only what persist made', async () => {
    const f = makeFixture({ links: ['memory'], sync: true, bundle: true });
    await converge(f);
    const conflict = join(f.target('memory'), 'notes', 'a.md.persist-conflict-20261201T101010Z');
    const partial = join(f.bucket, 'state', '.app.db.persist-tmp-0123456789ab');
    const adoptPartial = join(f.target('memory'), '.b.md.persist-partial-4f2a00c0ffee');
    const bundleTemp = join(f.bucket, 'bundles', '.repo.bundle.persist-tmp-feedbeef0000');
    mkdirSync(join(f.target('memory'), 'notes'), { recursive: true });
    for (const path of [conflict, partial, adoptPartial, bundleTemp]) writeFileSync(path, 'left over\n');
    // Look alike, but not persist's: never listed, never removed.
    const mine = [
      join(f.target('memory'), 'persist-conflict-notes.md'),
      join(f.target('memory'), 'c.md.persist-conflict-draft'),
      join(f.target('memory'), 'tmp.persist-tmp-x'),
      join(f.target('memory'), '.d.md.persist-tmp-draft'),
      join(f.target('memory'), '.e.md.persist-partial-mine'),
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
    for (const path of [conflict, partial, adoptPartial, bundleTemp]) expect(existsSync(path)).toBe(false);
    for (const path of mine) expect(existsSync(path)).toBe(true);
    expect((await f.run(['status'])).stdout).not.toContain('leftover');
    expect((await f.run(['clean', '--auto-approve'])).stdout).toContain('No leftovers of persist in the bucket.\n');
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
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
