// A bundled repo holding files git cannot read (a container user that is not root, files of mode
// 000, a folder it may not list): the built CLI, run as that user, saves everything else of the
// work tree, names each unreadable path, and the next plan is converged.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, runPersist, tempDir } from './helpers.js';

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;


describe('a bundled repo with files git cannot read', () => {
  it('saves the rest of the work tree, names the unreadable paths, and converges', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    writeFileSync(
      join(dir, 'persist.yaml'),
      `version: 1
workspace: ./ws
buckets:
  data:
    name: unreadable
    mount: { backend: local, path: ./bucket }
bundles:
  repo: { repo: ./repo, file: bundles/repo.bundle }
`,
    );
    for (const folder of ['ws', 'bucket', 'tmp', 'home']) mkdirSync(join(dir, folder));
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    git(repo, 'init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'README.md'), 'v1\n');
    writeFileSync(join(repo, 'private.txt'), 'committed\n');
    git(repo, 'add', '-A');
    git(repo, 'commit', '-q', '-m', 'first');
    writeFileSync(join(repo, 'README.md'), 'v2, not committed\n');
    writeFileSync(join(repo, 'notes.md'), 'untracked\n');
    writeFileSync(join(repo, 'secret.txt'), 'nobody may read this\n');
    writeFileSync(join(repo, 'private.txt'), 'changed, then locked\n');
    mkdirSync(join(repo, 'locked'));
    writeFileSync(join(repo, 'locked', 'inside.txt'), 'in a folder nobody may list\n');
    if (IS_ROOT) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
    chmodSync(join(repo, 'secret.txt'), 0o000);
    chmodSync(join(repo, 'private.txt'), 0o000);
    chmodSync(join(repo, 'locked'), 0o000);

    const run = (args: string[]) =>
      runPersist(args, {
        cwd: dir,
        env: { PERSIST_STATE_DIR: join(dir, 'state'), HOME: join(dir, 'home'), TMPDIR: join(dir, 'tmp') },
        wrapper: IS_ROOT ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : undefined,
      });

    const applied = await run(['apply', '--auto-approve']);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    const warning = /3 paths in \S+ cannot be read by git.*: (.+)$/m.exec(applied.stdout);
    expect(warning?.[1]?.split(', ').sort()).toEqual(['locked/', 'private.txt', 'secret.txt']);
    expect(applied.stdout).toMatch(/wrote bundles\/repo\.bundle \(1 ref, the uncommitted work, \d+ bytes/);

    // What the bundle holds: the readable changes; private.txt as committed, no secret.txt, nothing of locked/.
    const bundle = join(dir, 'bucket', 'bundles', 'repo.bundle');
    const heads = Object.fromEntries(git(dir, 'bundle', 'list-heads', bundle).split('\n').map((line) => line.split(' ').reverse()));
    const snapshot = heads['refs/persist/worktree']!;
    const clone = join(dir, 'clone');
    git(dir, 'init', '-q', clone);
    git(clone, 'fetch', '-q', bundle, `${snapshot}:refs/saved`);
    expect(git(clone, 'ls-tree', '-r', '--name-only', 'refs/saved').split('\n').sort()).toEqual(['README.md', 'notes.md', 'private.txt']);
    expect(git(clone, 'show', 'refs/saved:README.md')).toBe('v2, not committed');
    expect(git(clone, 'show', 'refs/saved:private.txt')).toBe('committed');

    const planned = await run(['plan', '--detailed-exitcode']);
    expect(planned.stdout).toContain('No changes');
    expect(planned.code).toBe(0);
  });
});
