// plan lists the files a sync restore brings back and a push sends (names, up to 10 of each, then
// a count; --json all of them), and `plan --diff` shows what a push would change in a text file.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unifiedDiff } from '../../src/output/file-diff.js';
import { converge, makeFixture } from './helpers.js';

describe('plan lists files', () => {
  it('names up to 10 files a restore brings back, then how many more; --json lists them all', async () => {
    const f = makeFixture({ sync: true });
    for (let i = 1; i <= 12; i++) writeFileSync(join(f.dir, 'state', `f${String(i).padStart(2, '0')}.txt`), `file ${i}\n`);
    await converge(f);
    renameSync(join(f.dir, 'state'), join(f.dir, 'state.aside'));
    const text = await f.run(['plan']);
    expect(text.stdout).toContain(
      ['     restores 13 files:', '       app.db', ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `       f0${i}.txt`), '       and 3 more', ''].join('\n'),
    );
    const json = JSON.parse((await f.run(['plan', '--json'])).stdout) as { actions: { address: string; files?: Record<string, string[]> }[] };
    const sync = json.actions.find((a) => a.address === 'sync.state')!;
    expect(sync.files).toEqual({ restore: ['app.db', ...Array.from({ length: 12 }, (_, i) => `f${String(i + 1).padStart(2, '0')}.txt`)] });
  });

  it('names what a push sends: new, changed, and removed files', async () => {
    const f = makeFixture({ sync: true });
    writeFileSync(join(f.dir, 'state', 'old.txt'), 'old\n');
    await converge(f);
    writeFileSync(join(f.dir, 'state', 'app.db'), 'rows and more rows\n');
    writeFileSync(join(f.dir, 'state', 'new.txt'), 'new\n');
    rmSync(join(f.dir, 'state', 'old.txt'));
    const text = await f.run(['plan']);
    expect(text.stdout).toContain(['     pushes 1 new file:', '       new.txt', '     pushes 1 changed file:', '       app.db', '     keeps 1 file removed locally in the mirror:', '       old.txt', ''].join('\n'));
    const json = JSON.parse((await f.run(['plan', '--json'])).stdout) as { actions: { address: string; files?: Record<string, string[]> }[] };
    expect(json.actions.find((a) => a.address === 'sync.state')!.files).toEqual({ add: ['new.txt'], change: ['app.db'], keep: ['old.txt'] });
  });
});

describe('plan --diff', () => {
  it('shows a unified diff of a changed text file a push would send, never of a binary or big one', async () => {
    const f = makeFixture({ sync: true, file: true });
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i + 1}`);
    writeFileSync(join(f.dir, 'state', 'notes.txt'), `${lines.join('\n')}\n`);
    writeFileSync(join(f.dir, 'state', 'blob.bin'), Buffer.from([1, 2, 0, 3]));
    writeFileSync(join(f.dir, 'state', 'big.txt'), 'a'.repeat(70 * 1024));
    await converge(f);
    writeFileSync(join(f.dir, 'state', 'notes.txt'), `${lines.map((l) => (l === 'line 5' ? 'line five' : l)).join('\n')}\n`);
    writeFileSync(join(f.dir, 'state', 'blob.bin'), Buffer.from([1, 2, 0, 4]));
    writeFileSync(join(f.dir, 'state', 'big.txt'), 'b'.repeat(70 * 1024));
    writeFileSync(join(f.bucket, 'creds.env'), 'TOKEN=changed\n'); // a files: resource: restored, never diffed
    const result = await f.run(['plan', '--diff']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      [
        `--- ${join(f.bucket, 'state', 'notes.txt')}`,
        `+++ ${join(f.dir, 'state', 'notes.txt')}`,
        '@@ -2,7 +2,7 @@',
        ' line 2',
        ' line 3',
        ' line 4',
        '-line 5',
        '+line five',
        ' line 6',
        ' line 7',
        ' line 8',
        '',
      ].join('\n'),
    );
    expect(result.stdout).toContain('sync.state: blob.bin: not shown (binary)\n');
    expect(result.stdout).toContain('sync.state: big.txt: not shown (70.0 KiB, over 64.0 KiB)\n');
    expect(result.stdout).not.toContain('TOKEN');
    // Without --diff: no contents.
    expect((await f.run(['plan'])).stdout).not.toContain('line five');
  });

  it('unifiedDiff: hunks, context, additions at the end, equal files', () => {
    expect(unifiedDiff('a', 'b', 'x\n', 'x\n')).toBe('');
    expect(unifiedDiff('a', 'b', 'one\ntwo\n', 'one\ntwo\nthree\n')).toBe('--- a\n+++ b\n@@ -1,2 +1,3 @@\n one\n two\n+three\n');
    expect(unifiedDiff('a', 'b', '', 'new\n')).toBe('--- a\n+++ b\n@@ -0,0 +1,1 @@\n+new\n');
    const many = Array.from({ length: 20 }, (_, i) => `l${i}`);
    const edited = many.map((l) => (l === 'l1' || l === 'l18' ? `${l}!` : l));
    expect(unifiedDiff('a', 'b', `${many.join('\n')}\n`, `${edited.join('\n')}\n`)).toBe(
      ['--- a', '+++ b', '@@ -1,5 +1,5 @@', ' l0', '-l1', '+l1!', ' l2', ' l3', ' l4', '@@ -16,5 +16,5 @@', ' l15', ' l16', ' l17', '-l18', '+l18!', ' l19', ''].join('\n'),
    );
  });
});
