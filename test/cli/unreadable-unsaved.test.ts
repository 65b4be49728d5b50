// Files persist cannot read (mode 000, a folder it may not list, an untracked file git cannot
// read) are reported and left out of the store. That is not "saved": after the first apply has
// left them out, plan notes them (its "No changes" does not read as all saved), status says `!!`,
// and shutdown exits 1 naming them; a shutdown that pushes them first (no apply before) too. Once
// they are readable again, the next apply saves them and everything reads as saved.
// The plan before the first push does not count such a file as pushed.
// Run as root (CI), the CLI drops to nobody through setpriv: root reads files of mode 000.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, runPersist, tempDir } from '../hardening/helpers.js';

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = 65534;


/** A sync holding an unreadable file and folder, and a repo (one commit) holding an unreadable untracked file. */
function fixture(): { dir: string; run: (args: string[]) => ReturnType<typeof runPersist> } {
  const dir = tempDir('persist-unreadable-');
  chmodSync(dir, 0o755);
  writeFileSync(
    join(dir, 'persist.yaml'),
    `version: 1
buckets:
  data:
    name: unreadable
    mount: { backend: local, path: ./bucket }
syncs:
  state: { from: ./state, to: state }
bundles:
  repo: { repo: ./repo, file: b/repo.bundle }
`,
  );
  for (const folder of ['bucket', 'tmp', 'home', 'state', 'state/closed', 'repo']) mkdirSync(join(dir, folder));
  writeFileSync(join(dir, 'state', 'a'), 'a\n');
  writeFileSync(join(dir, 'state', 'secret'), 'secret\n');
  writeFileSync(join(dir, 'state', 'closed', 'c'), 'c\n');
  const repo = join(dir, 'repo');
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'README.md'), 'readme\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'first');
  writeFileSync(join(repo, 'untracked.txt'), 'not committed\n');
  if (IS_ROOT) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
  chmodSync(join(dir, 'state', 'secret'), 0o000);
  chmodSync(join(dir, 'state', 'closed'), 0o000);
  chmodSync(join(repo, 'untracked.txt'), 0o000);
  const run = (args: string[]) =>
    runPersist(args, {
      cwd: dir,
      env: { PERSIST_STATE_DIR: join(dir, 'persist-state'), HOME: join(dir, 'home'), TMPDIR: join(dir, 'tmp') },
      wrapper: IS_ROOT ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : undefined,
    });
  return { dir, run };
}

function makeReadable(dir: string): void {
  chmodSync(join(dir, 'state', 'secret'), 0o644);
  chmodSync(join(dir, 'state', 'closed'), 0o755);
  chmodSync(join(dir, 'repo', 'untracked.txt'), 0o644);
}

const SYNC_LEFT_OUT =
  '2 paths cannot be read and are not in the store (the mirror keeps any copy it had): closed/ (EACCES), secret (EACCES); make them readable, then persist apply saves them';
const bundleLeftOut = (dir: string) =>
  `1 path in ${join(dir, 'repo')} cannot be read by git and is not in the store as it is now (untracked: not saved; tracked: saved as last staged): untracked.txt; make it readable, then persist apply saves it`;

describe('unreadable files are never reported as saved', () => {
  it('after the first apply left them out: plan notes them, status says !!, shutdown exits 1; once readable, apply saves them', async () => {
    const { dir, run } = fixture();
    // The plan before the first push opens the files it could not read by their mode: not counted as pushed.
    const first = await run(['plan']);
    expect(first.stdout).toContain('warning: 2 paths cannot be read and are not synced (the mirror keeps what it had): closed/ (EACCES), secret (EACCES)\n');
    expect(first.stdout).toContain('pushes 1 new file:\n       a\n');
    const applied = await run(['apply', '--auto-approve']);
    expect(applied.stderr).toBe('');
    expect(applied.code, applied.stdout).toBe(0);
    expect(applied.stdout).toContain(`note: sync.state: ${SYNC_LEFT_OUT}\n`);
    expect(applied.stdout).toContain(`note: bundle.repo: ${bundleLeftOut(dir)}\n`);
    expect(readdirSync(join(dir, 'bucket', 'state')).filter((name) => !name.startsWith('.persist'))).toEqual(['a']);

    const planned = await run(['plan', '--detailed-exitcode']);
    expect(planned.code, planned.stdout).toBe(0);
    expect(planned.stdout).toContain('No changes');
    expect(planned.stdout).toContain(`note: sync.state: not saved: ${SYNC_LEFT_OUT}\n`);
    expect(planned.stdout).toContain(`note: bundle.repo: not saved: ${bundleLeftOut(dir)}\n`);

    const status = await run(['status']);
    expect(status.stdout).toContain(`!!  sync.state  not saved: ${SYNC_LEFT_OUT}\n`);
    expect(status.stdout).toContain(`!!  bundle.repo  not saved: ${bundleLeftOut(dir)}\n`);
    const statusJson = JSON.parse((await run(['status', '--json'])).stdout) as { resources: { address: string; ok: boolean; state: string }[] };
    expect(statusJson.resources.find((row) => row.address === 'sync.state')).toMatchObject({ ok: false, state: `not saved: ${SYNC_LEFT_OUT}` });

    const down = await run(['shutdown', '--keep-mounted']);
    expect(down.code, down.stdout).toBe(1);
    expect(down.stdout).not.toContain('everything is in the store');
    expect(down.stdout).toContain(`✖ sync.state: not saved: ${SYNC_LEFT_OUT}\n`);
    expect(down.stdout).toContain(`✖ bundle.repo: not saved: ${bundleLeftOut(dir)}\n`);

    // Readable again: the next plan pushes them (a chmod changes the ctime), and then all is saved.
    makeReadable(dir);
    const again = await run(['plan', '--detailed-exitcode']);
    expect(again.code, again.stdout).toBe(2);
    expect(again.stdout).toMatch(/sync\.state +push/);
    expect(again.stdout).toMatch(/bundle\.repo +update/);
    expect((await run(['apply', '--auto-approve'])).code).toBe(0);
    expect(readdirSync(join(dir, 'bucket', 'state')).filter((name) => !name.startsWith('.persist')).sort()).toEqual(['a', 'closed', 'secret']);
    const clean = await run(['plan', '--detailed-exitcode']);
    expect(clean.code, clean.stdout).toBe(0);
    expect(clean.stdout).not.toContain('note:');
    expect((await run(['status'])).stdout).not.toContain('!!  ');
    const saved = await run(['shutdown', '--keep-mounted']);
    expect(saved.code, saved.stdout).toBe(0);
    expect(saved.stdout).toContain('everything is in the store');
  });

  it('shutdown as the first command: its push and update leave them out, and it exits 1 naming them', async () => {
    const { dir, run } = fixture();
    const down = await run(['shutdown', '--keep-mounted']);
    expect(down.stderr).toBe('');
    expect(down.code, down.stdout).toBe(1);
    expect(down.stdout).not.toContain('everything is in the store');
    expect(down.stdout).toContain(`✖ sync.state: push done, but not all of it is in the store: ${SYNC_LEFT_OUT}\n`);
    expect(down.stdout).toContain(`✖ bundle.repo: update done, but not all of it is in the store: ${bundleLeftOut(dir)}\n`);
    expect(down.stdout).toMatch(/Shutdown failed .*not saved: (bundle\.repo, sync\.state|sync\.state, bundle\.repo)/);
    // What could be read is in the store all the same.
    expect(readdirSync(join(dir, 'bucket', 'state')).filter((name) => !name.startsWith('.persist'))).toEqual(['a']);
  });
});
