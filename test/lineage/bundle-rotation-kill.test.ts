// A bundle update killed at every step (SIGKILL of a separate process right before its n-th write
// into the bucket, the state folder or the repo, for every n until the update finishes): after
// each kill, every bundle file is whole and history names the generation it really holds (no
// record one off from its file), the two newest generations are still kept; the next apply
// finishes, history stays right, and a restore from the current bundle gives the repo back. The driver is bundled with esbuild from bundle-driver.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commit, git, initRepo } from '../git/helpers.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let base: string;
let driver: string;
/** The fixed place every round runs in (lineage records name absolute paths). */
let work: string;
let template: string;

function run(command: 'apply' | 'slots', killAt?: number) {
  const args = [driver, command, work, ...(killAt ? [String(killAt)] : [])];
  // A killed update leaves its local build folder in TMPDIR: ours, removed with the rest.
  return spawnSync(process.execPath, args, { env: { ...process.env, PERSIST_STATE_DIR: join(work, 'state'), HOSTNAME: 'crash', TMPDIR: join(base, 'tmp') }, encoding: 'utf8' });
}

function slots(): { kept: { rotation: number; generation: number | null }[]; pending: boolean } {
  const result = run('slots');
  if (result.status !== 0) throw new Error(`slots failed: ${result.stdout}${result.stderr}`);
  return JSON.parse(result.stdout) as ReturnType<typeof slots>;
}

function fileOf(rotation: number): string {
  return join(work, 'mount', rotation === 0 ? 'repo.bundle' : `repo.bundle.${rotation}`);
}

function bundleHead(file: string): string {
  execFileSync('git', ['bundle', 'verify', '-q', file], { cwd: join(work, 'repo'), stdio: 'pipe' }); // whole and readable
  const heads = execFileSync('git', ['bundle', 'list-heads', file], { cwd: work, encoding: 'utf8' });
  return /^([0-9a-f]{40}) HEAD$/m.exec(heads)![1]!;
}

/** Every kept file is whole and holds the generation history says (by its HEAD); the generations, `<file>` first (a copy of `<file>` made by a killed rotation is listed once). */
function checkHistory(heads: Record<number, string>, label: string): number[] {
  const { kept } = slots();
  const generations: number[] = [];
  for (const slot of kept) {
    expect(slot.generation, `${label}: ${fileOf(slot.rotation)} has no known generation`).not.toBeNull();
    expect(bundleHead(fileOf(slot.rotation)), `${label}: ${fileOf(slot.rotation)} is listed as generation ${slot.generation}`).toBe(heads[slot.generation!]);
    if (!generations.includes(slot.generation!)) generations.push(slot.generation!);
  }
  return generations;
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'persist-bundle-kill-'));
  driver = join(base, 'driver.cjs');
  await build({ entryPoints: [join(repoRoot, 'test', 'lineage', 'bundle-driver.ts')], outfile: driver, bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' });
  work = join(base, 'work');
  template = join(base, 'template');
  mkdirSync(join(base, 'tmp'));
}, 60_000);

afterAll(() => rmSync(base, { recursive: true, force: true }));

it('a bundle update killed at each step keeps history and restore right', async () => {
  // Three saved generations (keep 2: repo.bundle, .1, .2 all present), then a fourth commit.
  mkdirSync(join(work, 'mount'), { recursive: true });
  const repo = join(work, 'repo');
  initRepo(repo, { 'a.txt': 'one\n' });
  const heads: Record<number, string> = { 1: git(repo, 'rev-parse', 'HEAD') };
  expect(run('apply').stdout).toMatch(/^update: wrote/);
  for (const generation of [2, 3]) {
    heads[generation] = commit(repo, { 'a.txt': `${generation}\n` }, `change ${generation}`);
    expect(run('apply').stdout).toMatch(/^update: wrote/);
  }
  expect(checkHistory(heads, 'before')).toEqual([3, 2, 1]);
  const next = commit(repo, { 'a.txt': 'four\n', 'b.txt': 'more\n' }, 'change 4');
  cpSync(work, template, { recursive: true, verbatimSymlinks: true });

  let killedAt = 0;
  for (let killAt = 1; killAt < 200; killAt++) {
    rmSync(work, { recursive: true, force: true });
    cpSync(template, work, { recursive: true, verbatimSymlinks: true });
    const killed = run('apply', killAt);
    if (killed.signal !== 'SIGKILL') {
      // Past the last write: the update ran to its end.
      expect(killed.status, `${killed.stdout}${killed.stderr}`).toBe(0);
      break;
    }
    killedAt = killAt;
    const label = `killed before write ${killAt}`;
    // The killed update's generation 4 exists only if its bundle reached repo.bundle.
    const after: Record<number, string> = { ...heads, 4: next };
    const listed = checkHistory(after, label);
    expect(listed.slice(0, 2), `${label}: the two newest generations are kept`).toEqual(listed.includes(4) ? [4, 3] : [3, 2]);

    // The next apply finishes (or finds nothing left to do), and history stays right.
    const again = run('apply');
    expect(again.status, `${label}: ${again.stdout}${again.stderr}`).toBe(0);
    expect(checkHistory(after, `${label}, then applied`)).toEqual([4, 3, 2]);
    expect(slots().kept.map((slot) => slot.generation), `${label}: one file per generation`).toEqual([4, 3, 2]);
    expect(bundleHead(fileOf(0))).toBe(next);
    // On a loaded machine each update takes seconds: the next save and a restore are checked
    // where the kill left an update's record behind (the next apply had nothing to write), and
    // every fourth round.
    if (!again.stdout.startsWith('No changes.') && killAt % 4 !== 0) continue;
    // One more update after that rotates as usual.
    after[5] = commit(repo, { 'a.txt': 'five\n' }, 'change 5');
    expect(run('apply').stdout, label).toMatch(/^update: wrote/);
    expect(checkHistory(after, `${label}, then one more`)).toEqual([5, 4, 3]);
    expect(slots().pending).toBe(false);

    // Restore: the repo comes back from the current bundle.
    rmSync(repo, { recursive: true, force: true });
    expect(run('apply').stdout, label).toMatch(/^restore: restored/);
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(after[5]);
  }
  // The update has many steps in the bucket and the state folder; each was a kill point.
  expect(killedAt).toBeGreaterThan(8);
}, 600_000);
