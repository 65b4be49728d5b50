// A container killed in the middle of a push, and the new container that restores after it
// (found by test/e2e/kill-under-watch.test.ts). A push copies a shard's files, then writes the
// shard, then the root: a kill in between leaves the mirror ahead of its manifest. The new
// container's apply restores the mirror as found; the manifest that matches it is written by the
// next push. That apply must succeed (start.sh starts the agent only then, and a fresh container
// would otherwise fail the same way at every boot), say what is left, and the next apply pushes.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

const ROOT = '.persist-sync.json';

describe('a new container after a push that was killed half-way', () => {
  it('shards written, root not: the restore succeeds, notes what is left, and the next apply pushes it', async () => {
    const f = makeFixture({ sync: true, leaseTtl: '1s' });
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    const rootBefore = readFileSync(join(f.bucket, 'state', ROOT));
    // The killed push: the new file and its shard reached the mirror, the root did not.
    writeFileSync(join(f.dir, 'state', 'app.db'), 'rows\nmore rows\n');
    writeFileSync(join(f.dir, 'state', 'settings.json'), '{"n":2}\n');
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    writeFileSync(join(f.bucket, 'state', ROOT), rootBefore);

    // The new container: its local folder and persist state are new and empty.
    rmSync(join(f.dir, 'state'), { recursive: true });
    renameSync(f.stateDir, `${f.stateDir}-killed`);
    const restored = await f.run(['apply', '--auto-approve', '--lock-timeout', '30s']);
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/sync\.state {2}restore: restored 2 files/);
    expect(restored.stdout).toMatch(/still needs "push" \(an interrupted push left .*older than its shards\): the next apply or watch round does it/);
    expect(readFileSync(join(f.dir, 'state', 'app.db'), 'utf8')).toBe('rows\nmore rows\n');
    expect(readFileSync(join(f.dir, 'state', 'settings.json'), 'utf8')).toBe('{"n":2}\n');

    const next = await f.run(['apply', '--auto-approve']);
    expect(next.code, next.stdout + next.stderr).toBe(0);
    expect(next.stdout).toMatch(/sync\.state {2}push/);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('a file copied, its shard not written: restored as found, and the next apply pushes the manifest that matches it', async () => {
    const f = makeFixture({ sync: true, leaseTtl: '1s' });
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    // The killed push: the new bytes reached the mirror, the manifest still lists the old ones.
    writeFileSync(join(f.bucket, 'state', 'app.db'), 'rows\nnewer rows\n');

    rmSync(join(f.dir, 'state'), { recursive: true });
    renameSync(f.stateDir, `${f.stateDir}-killed`);
    const restored = await f.run(['apply', '--auto-approve', '--lock-timeout', '30s']);
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/differed from its manifest and were restored as found: app\.db/);
    expect(restored.stdout).toMatch(/still needs "push" .*: the next apply or watch round does it/);
    expect(readFileSync(join(f.dir, 'state', 'app.db'), 'utf8')).toBe('rows\nnewer rows\n');

    const next = await f.run(['apply', '--auto-approve']);
    expect(next.code, next.stdout + next.stderr).toBe(0);
    expect(next.stdout).toMatch(/sync\.state {2}push/);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });
});
