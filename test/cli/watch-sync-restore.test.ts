// `persist watch --auto-approve` and a sync restore, through the built CLI on the `local` backend:
// watch restores only into an empty place. A new machine whose folder holds files of its own gets
// "needs a person" (its files stay where they are, nothing goes into the backups); once the folder
// is moved aside by hand, the next round restores it.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture } from './helpers.js';

describe('persist watch and a sync restore', () => {
  it('never restores over a folder with files of its own; restores once the folder is moved aside', async () => {
    const f = makeFixture({ sync: true });
    writeFileSync(join(f.dir, 'state', 'f1'), 'from machine a\n');
    await converge(f);
    const down = await f.run(['shutdown']); // machine a releases the bucket's lease
    expect(down.code, down.stdout + down.stderr).toBe(0);

    // Machine c: its own folder, workspace and state folder, the same bucket; its folder holds files of its own.
    const c = join(f.dir, 'c');
    mkdirSync(join(c, 'state'), { recursive: true });
    writeFileSync(join(c, 'persist.yaml'), readFileSync(f.spec, 'utf8').replace('path: ./bucket', 'path: ../bucket'));
    writeFileSync(join(c, 'state', 'f1'), 'machine c wrote this\n');
    writeFileSync(join(c, 'state', 'notes.md'), 'the agent of c\n');
    const env = { PERSIST_STATE_DIR: join(c, '.state') };
    const plan = await f.run(['plan', '-f', 'c/persist.yaml'], { env });
    expect(plan.stdout).toMatch(/<= sync\.state {2}restore \(local files kept aside: 2 differ\)/);

    const run = f.start(['watch', '--interval', '1s', '--auto-approve', '-f', 'c/persist.yaml'], { env, timeoutMs: 60_000 });
    await run.waitFor(/ round 1\] needs a person \(not applied\): sync\.state restore$/m);
    expect(run.output().stdout).not.toMatch(/\] applied /);
    expect(readFileSync(join(c, 'state', 'notes.md'), 'utf8')).toBe('the agent of c\n');
    expect(readFileSync(join(c, 'state', 'f1'), 'utf8')).toBe('machine c wrote this\n');
    expect(existsSync(join(c, 'ws', '.persist-backups'))).toBe(false);

    // A person moves the folder aside: the place is empty, the next round restores it.
    renameSync(join(c, 'state'), join(c, 'state.mine'));
    await run.waitFor(/\] applied 1, failed 0, skipped 0: sync\.state restore$/m, 15_000);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(readFileSync(join(c, 'state', 'f1'), 'utf8')).toBe('from machine a\n');
    expect(readdirSync(join(c, 'state')).sort()).toEqual(['app.db', 'f1']);
    expect(readFileSync(join(c, 'state.mine', 'notes.md'), 'utf8')).toBe('the agent of c\n');
    expect(existsSync(join(c, 'ws', '.persist-backups'))).toBe(false);
  }, 60_000);
});
