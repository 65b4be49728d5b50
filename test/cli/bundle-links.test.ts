// The built CLI, real git, a `local` bucket: persist's own links inside a bundled repo are never
// part of its saved work tree. The repo ignores `memory/` (a folder-only rule, which git does not
// apply to the symlink `memory`), as moltbot's does. Fails on the code before: the snapshot held
// `memory -> <mount>/workspace/memory`, a second container's restore made that symlink (to the
// first container's mount path) and its plan then wanted to update the bundle.
import { cpSync, lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commit, makeFixture, type CliResult } from './helpers.js';

function spec(bucket: string): string {
  return [
    'version: 1',
    'workspace: ./repo',
    'buckets:',
    '  data:',
    '    name: test-data',
    // A short lease: the first container stops without a shutdown; the second takes over once it expires.
    '    lease: { ttl: 1s }',
    `    mount: { backend: local, path: ./${bucket} }`,
    'links:',
    '  memory: workspace/memory',
    'bundles:',
    '  repo:',
    '    repo: ./repo',
    '    file: bundles/repo.bundle',
    '',
  ].join('\n');
}

function git(repo: string, ...args: string[]): string {
  return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8' }).trim();
}

function ok(result: CliResult): string {
  if (result.code !== 0) throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The refs a bundle file lists (`git bundle list-heads`), name → sha. */
function bundleRefs(file: string): Record<string, string> {
  const refs: Record<string, string> = {};
  for (const line of execFileSync('git', ['bundle', 'list-heads', file], { encoding: 'utf8' }).trim().split('\n')) {
    const [sha, name] = line.split(' ');
    refs[name!] = sha!;
  }
  return refs;
}

/** A repo that ignores `memory/`, with the agent's memory folder in it, linked into the bucket by the first apply. */
function setup(untracked: boolean) {
  const f = makeFixture({ bundle: true });
  const repo = join(f.dir, 'repo');
  writeFileSync(join(f.dir, 'a.yaml'), spec('bucket-a'));
  writeFileSync(join(f.dir, 'b.yaml'), spec('bucket-b'));
  commit(repo, '.gitignore', 'memory/\n');
  execFileSync('mkdir', ['-p', join(repo, 'memory')]);
  writeFileSync(join(repo, 'memory', 'today.md'), 'remembered\n');
  if (untracked) writeFileSync(join(repo, 'SOUL.md'), 'uncommitted work\n');
  const machine = (name: string, specFile: string) => {
    const env = { PERSIST_STATE_DIR: join(f.dir, `state-${name}`), HOSTNAME: name };
    return (args: string[]) => f.run([...args, ...(args[0] === 'apply' ? ['--auto-approve', '--lock-timeout', '20s'] : []), '-f', specFile], { env });
  };
  return { f, repo, a: machine('a', 'a.yaml'), b: machine('b', 'b.yaml') };
}

describe('a link inside a bundled repo', () => {
  it('is left out of the saved work tree; a second container restores the work without it and converges', async () => {
    const { f, repo, a, b } = setup(true);
    ok(await a(['apply']));
    expect(readlinkSync(join(repo, 'memory'))).toBe(join(f.dir, 'bucket-a', 'workspace', 'memory'));
    expect(ok(await a(['plan', '--detailed-exitcode']))).toContain('No changes');

    const bundle = join(f.dir, 'bucket-a', 'bundles', 'repo.bundle');
    const snapshot = bundleRefs(bundle)['refs/persist/worktree'];
    expect(snapshot).toBeDefined();
    expect(git(repo, 'ls-tree', '-r', '--name-only', snapshot!).split('\n')).toEqual(['.gitignore', 'README.md', 'SOUL.md']);

    // The link made again (as a new mount path would): still no change for the bundle.
    rmSync(join(repo, 'memory'));
    ok(await a(['apply']));
    expect(ok(await a(['plan', '--detailed-exitcode']))).toContain('No changes');

    // A second container: its own state folder, no repo, the bucket at another mount path.
    cpSync(join(f.dir, 'bucket-a'), join(f.dir, 'bucket-b'), { recursive: true, verbatimSymlinks: true });
    rmSync(repo, { recursive: true });
    // The bundle alone brings back the uncommitted work and no symlink...
    ok(await b(['apply', '--target', 'bundle.repo']));
    expect(readFileSync(join(repo, 'SOUL.md'), 'utf8')).toBe('uncommitted work\n');
    expect(lstatSync(join(repo, 'memory'), { throwIfNoEntry: false })).toBeUndefined();
    // ...the link resource makes it, to this container's mount, and the plan is converged.
    ok(await b(['apply']));
    expect(readlinkSync(join(repo, 'memory'))).toBe(join(f.dir, 'bucket-b', 'workspace', 'memory'));
    expect(readFileSync(join(repo, 'memory', 'today.md'), 'utf8')).toBe('remembered\n');
    expect(ok(await b(['plan', '--detailed-exitcode']))).toContain('No changes');
    expect(git(repo, 'status', '--porcelain')).toBe('?? SOUL.md\n?? memory');
  });

  it('whose only untracked entry is the link counts as clean: the bundle holds no work tree snapshot', async () => {
    const { f, repo, a } = setup(false);
    ok(await a(['apply']));
    expect(lstatSync(join(repo, 'memory')).isSymbolicLink()).toBe(true);
    expect(git(repo, 'status', '--porcelain')).toBe('?? memory'); // git itself does see it
    const refs = bundleRefs(join(f.dir, 'bucket-a', 'bundles', 'repo.bundle'));
    expect(refs['refs/persist/worktree']).toBeUndefined();
    expect(ok(await a(['plan', '--detailed-exitcode']))).toContain('No changes');
  });
});
