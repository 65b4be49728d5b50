// The built CLI: an uncommitted edit in a bundled repo shows in plan, and apply saves it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
