// The built CLI: an uncommitted edit in a bundled repo shows in plan, and apply saves it, even
// while a file of it never reads whole.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { converge, makeFixture } from './helpers.js';

describe('plan of a bundled repo with uncommitted work', () => {
  it('shows an update with the work tree line after an edit, and No changes once applied', async () => {
    const f = makeFixture({ bundle: true });
    await converge(f);
    writeFileSync(join(f.dir, 'repo', 'README.md'), '# repo, edited but not committed\n');
    writeFileSync(join(f.dir, 'repo', 'SOUL.md'), 'untracked\n');
    const plan = await f.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('1. ~ bundle.repo  update');
    expect(plan.stdout).toContain("uncommitted work differs from the snapshot in bundles/repo.bundle");
    expect(plan.stdout).toMatch(/work tree: as committed → snapshot [0-9a-f]{12} \(1 modified, 1 added since HEAD\)/);
    expect(plan.stderr).toBe('');
    await converge(f);
  });
});

describe('a file of a bundled repo that the agent holds open mid-update at every read', () => {
  it('does not keep the rest of the repo out of the store: saved at its last saved version, said so, and saved as it is once let go', async () => {
    const f = makeFixture({ bundle: true });
    const repo = join(f.dir, 'repo');
    writeFileSync(join(repo, 'README.md'), '# repo, saved uncommitted\n');
    await converge(f);
    writeFileSync(join(repo, 'notes.md'), 'a new note\n');
    writeFileSync(join(repo, 'README.md'), '# repo, being written\n');
    // A writer inside its update of a tracked file (open for writing, not appending) for as long as the apply runs.
    const holder = spawn('sh', ['-c', 'exec 3<>"$1"; exec sleep 60', 'sh', join(repo, 'README.md')], { stdio: 'ignore' });
    onTestFinished(() => {
      holder.kill('SIGKILL');
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const applied = await f.run(['apply', '--auto-approve']);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/✔ 1\. ~ bundle\.repo +update: wrote bundles\/repo\.bundle/);
    expect(applied.stdout).toMatch(/1 file in \S+ changed at every read: the store keeps its last saved version \(none for a new file\), not the one now .*: README\.md/);
    const stored = join(f.dir, 'stored');
    const bundle = join(f.bucket, 'bundles', 'repo.bundle');
    execFileSync('git', ['clone', '-q', bundle, stored]);
    execFileSync('git', ['-C', stored, 'fetch', '-q', bundle, 'refs/persist/worktree:refs/persist/worktree']);
    const show = (path: string) => execFileSync('git', ['-C', stored, 'show', `refs/persist/worktree:${path}`], { encoding: 'utf8' });
    expect(show('notes.md')).toBe('a new note\n');
    expect(show('README.md')).toBe('# repo, saved uncommitted\n');
    // Still held and written again, nothing else changed: the stored bundle holds these very refs, and another copy
    // would only push a real generation out of the kept ones.
    const generations = () => readdirSync(join(f.bucket, 'bundles')).filter((name) => /^repo\.bundle\.\d+$/.test(name)).length;
    const kept = generations();
    writeFileSync(join(repo, 'README.md'), '# repo, being written again\n'); // changed lately: read again
    const again = await f.run(['apply', '--auto-approve']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/✔ 1\. ~ bundle\.repo +update: bundles\/repo\.bundle already holds these refs: nothing written/);
    expect(again.stdout).toMatch(/changed at every read: .*: README\.md/);
    expect(generations()).toBe(kept);
    // Let go without another write: the file's stats stay those the apply saw, and still the
    // next plan must not take the save for the work tree as it is.
    holder.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const plan = await f.run(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.stdout).toBe(2);
    expect(plan.stdout).toContain('1. ~ bundle.repo  update');
    await converge(f);
  });
});
