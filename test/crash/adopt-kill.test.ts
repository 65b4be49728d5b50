// THE crash test: adopt a workspace folder of thousands of files and one large file into a local
// bucket, SIGKILL the apply process at many moments across the whole run, run apply again, and
// check after every kill that every original byte is still somewhere (original, backup or mount),
// and at the end that all of it is in the linked location and a plan reports no changes.
//
// It drives `node bin/persist.js apply -f SPEC --auto-approve` when the built CLI can plan the
// spec, else a driver bundled from adopt-driver.ts (the link module on the real host, in a
// separate process). PERSIST_CRASH_RUNNER=cli|driver forces one.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync, watch as watchFolder } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SMALL_FILES = 3_000;
const LARGE_FILE_BYTES = 64 * 1024 * 1024;
const ROUNDS = 2;

type Entry = { type: 'file'; sha: string; size: number; mode: number; ino: number } | { type: 'symlink'; linkTo: string } | { type: 'dir' };

let root: string;
let pristine: string;
const manifest = new Map<string, Entry>();

interface Runner {
  name: 'cli' | 'driver';
  apply(round: string): ChildProcess;
  /** Whether a plan reports no changes; the plan's output otherwise. */
  plan(round: string): { clean: boolean; output: string };
}

function layout(round: string) {
  const workspace = join(round, 'ws');
  const mount = join(round, 'mnt');
  return { workspace, mount, link: join(workspace, 'memory'), target: join(mount, 'workspace', 'memory'), backups: join(workspace, '.persist-backups') };
}

async function writeSpec(round: string): Promise<string> {
  const { workspace, mount } = layout(round);
  const spec = join(round, 'persist.yaml');
  await fs.writeFile(
    spec,
    ['version: 1', `workspace: ${workspace}`, 'buckets:', '  data:', '    name: crash-test', '    mount:', '      backend: local', `      path: ${mount}`, 'links:', '  memory: workspace/memory', ''].join('\n'),
  );
  return spec;
}

/** `bin/persist.js` and the bundle it loads, copied aside so that a rebuild meanwhile cannot disturb the runs. */
async function snapshotCli(): Promise<string> {
  const copy = join(root, 'cli');
  await fs.cp(join(repo, 'bin'), join(copy, 'bin'), { recursive: true });
  await fs.cp(join(repo, 'dist'), join(copy, 'dist'), { recursive: true });
  return join(copy, 'bin', 'persist.js');
}

function cliRunner(cli: string): Runner {
  const env = (round: string) => ({ ...process.env, PERSIST_STATE_DIR: join(round, 'state'), NO_COLOR: '1', ENVIRONMENT: '' });
  return {
    name: 'cli',
    apply: (round) => spawn(process.execPath, [cli, 'apply', '-f', join(round, 'persist.yaml'), '--auto-approve'], { env: env(round), stdio: ['ignore', 'pipe', 'pipe'] }),
    plan: (round) => {
      const result = spawnSync(process.execPath, [cli, 'plan', '-f', join(round, 'persist.yaml'), '--detailed-exitcode'], { env: env(round), encoding: 'utf8' });
      return { clean: result.status === 0, output: `${result.stdout}${result.stderr}` };
    },
  };
}

function driverRunner(driver: string): Runner {
  const args = (command: string, round: string) => {
    const { workspace, mount } = layout(round);
    return [driver, command, workspace, mount, 'memory', 'workspace/memory'];
  };
  return {
    name: 'driver',
    apply: (round) => spawn(process.execPath, args('apply', round), { stdio: ['ignore', 'pipe', 'pipe'] }),
    plan: (round) => {
      const result = spawnSync(process.execPath, args('plan', round), { encoding: 'utf8' });
      return { clean: result.status === 0 && result.stdout.trim() === 'No changes.', output: `${result.stdout}${result.stderr}` };
    },
  };
}

/** The CLI if it is built and can plan a one-link spec on a local bucket. */
async function chooseRunner(driver: string): Promise<Runner> {
  const forced = process.env.PERSIST_CRASH_RUNNER;
  if (forced === 'driver' || (forced !== 'cli' && !existsSync(join(repo, 'dist', 'persist.cjs')))) return driverRunner(driver);
  const cli = cliRunner(await snapshotCli());
  if (forced === 'cli') return cli;
  const probe = join(root, 'probe');
  await fs.mkdir(layout(probe).mount, { recursive: true });
  await fs.mkdir(layout(probe).workspace, { recursive: true });
  await writeSpec(probe);
  const { output } = cli.plan(probe);
  return output.includes('link.memory') ? cli : driverRunner(driver);
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  if ((await fs.stat(path)).size < 1024 * 1024) return hash.update(await fs.readFile(path)).digest('hex');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function makeTree(): Promise<void> {
  // Nested folders of small files of varied sizes and modes, empty folders, symlinks, one large file.
  const writeNote = async (i: number): Promise<void> => {
    const dir = join(pristine, `area-${i % 5}`, `topic-${i % 37}`, i % 3 === 0 ? 'deeper' : '');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(join(dir, `note-${i}.md`), randomBytes(20 + ((i * 7919) % 3000)), { mode: i % 10 === 0 ? 0o600 : 0o644 });
  };
  for (let i = 0; i < SMALL_FILES; i += 16) await Promise.all(Array.from({ length: Math.min(16, SMALL_FILES - i) }, (_, j) => writeNote(i + j)));
  await fs.mkdir(join(pristine, 'empty', 'inside'), { recursive: true });
  await fs.symlink('area-0/topic-0/deeper/note-0.md', join(pristine, 'latest'));
  const large = await fs.open(join(pristine, 'model.bin'), 'w');
  for (let written = 0; written < LARGE_FILE_BYTES; written += 4 * 1024 * 1024) await large.write(randomBytes(4 * 1024 * 1024));
  await large.close();
}

async function takeManifest(dir: string, rel = ''): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const key = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      manifest.set(key, { type: 'dir' });
      await takeManifest(path, key);
    } else if (entry.isSymbolicLink()) {
      manifest.set(key, { type: 'symlink', linkTo: await fs.readlink(path) });
    } else {
      const stats = await fs.stat(path);
      manifest.set(key, { type: 'file', sha: await sha256(path), size: stats.size, mode: stats.mode & 0o777, ino: stats.ino });
    }
  }
}

async function holds(base: string, rel: string, entry: Entry, byContentOnly = false): Promise<boolean> {
  const path = join(base, rel);
  const stats = await fs.lstat(path).catch(() => null);
  if (stats === null) return false;
  if (entry.type === 'dir') return stats.isDirectory();
  if (entry.type === 'symlink') return stats.isSymbolicLink() && (await fs.readlink(path)) === entry.linkTo;
  if (!stats.isFile() || stats.size !== entry.size) return false;
  // A hard link of the pristine file is the original bytes (adopt never writes its source; the
  // final check hashes everything against the manifest anyway); copies in the mount are hashed.
  return (!byContentOnly && stats.ino === entry.ino) || (await sha256(path)) === entry.sha;
}

/** After a kill: each original entry is intact in the original folder, a backup or the mount. */
async function assertNothingLost(round: string): Promise<void> {
  const { link, target, backups } = layout(round);
  const places: string[] = [];
  if ((await fs.lstat(link).catch(() => null))?.isDirectory()) places.push(link);
  for (const name of await fs.readdir(backups).catch(() => [] as string[])) {
    if (name.startsWith('memory-')) places.push(join(backups, name));
  }
  places.push(target);
  const lost: string[] = [];
  for (const [rel, entry] of manifest) {
    let found = false;
    for (const place of places) if (!found && (await holds(place, rel, entry))) found = true;
    if (!found) lost.push(rel);
  }
  expect(lost, `entries found nowhere in ${places.join(', ')}`).toEqual([]);
}

// 'committed' (the path missing, the original in the backup) lasts two back-to-back renames since
// the swap (adopt.ts step 3); after the commit point a kill mostly finds 'linked, journal left'.
type State = 'not started' | 'copying' | 'committed' | 'linked, journal left' | 'done';

async function stateOf(round: string): Promise<State> {
  const { link, backups } = layout(round);
  const journal = existsSync(join(backups, 'memory.adopt.json'));
  const here = await fs.lstat(link).catch(() => null);
  if (here?.isSymbolicLink()) return journal ? 'linked, journal left' : 'done';
  if (!journal) return 'not started';
  return here?.isDirectory() ? 'copying' : 'committed';
}

/**
 * When to kill: after a delay, or as soon as `when` holds (checked every few ms, and on every
 * change in `watchDir` when given). A progress point that an earlier run already `passed` is skipped.
 */
type KillPoint = { label: string; afterMs?: number; when?: () => boolean; passed?: () => boolean; watchDir?: string };

interface RunResult {
  outcome: 'killed' | 'finished';
  /** Milliseconds from start to the moment `watch` first held (if given and seen). */
  watchedAtMs?: number;
  elapsedMs: number;
}

/** Start an apply and SIGKILL it at `kill` unless it finished first (then it must have succeeded). */
async function runApply(runner: Runner, round: string, kill: KillPoint | null, watch?: () => boolean): Promise<RunResult> {
  const started = performance.now();
  const child = runner.apply(round);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) => child.on('exit', (code) => ((exitCode = code), resolve())));
  let watchedAtMs: number | undefined;
  let watchKilled = false;
  // A short window (the settling pass after the swap): killed from the change notification itself.
  const watcher = kill?.watchDir
    ? watchFolder(kill.watchDir, () => {
        if (!watchKilled && exitCode === undefined && kill.when?.()) {
          watchKilled = true;
          child.kill('SIGKILL');
        }
      })
    : undefined;
  try {
    while (exitCode === undefined) {
      if (watchKilled) {
        await exited;
        return { outcome: 'killed', watchedAtMs, elapsedMs: performance.now() - started };
      }
      const elapsed = performance.now() - started;
      if (watch && watchedAtMs === undefined && watch()) watchedAtMs = elapsed;
      if (kill && ((kill.afterMs !== undefined && elapsed >= kill.afterMs) || kill.when?.())) {
        child.kill('SIGKILL');
        await exited;
        return { outcome: 'killed', watchedAtMs, elapsedMs: elapsed };
      }
      expect(elapsed, `apply still running after 60 s:\n${output}`).toBeLessThan(60_000);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    watcher?.close();
  }
  if (watchKilled) return { outcome: 'killed', watchedAtMs, elapsedMs: performance.now() - started };
  expect(exitCode, `apply failed:\n${output}`).toBe(0);
  return { outcome: 'finished', watchedAtMs, elapsedMs: performance.now() - started };
}

/** Progress points of the bulk copy, in the order the copy reaches them (directories sorted by name). */
function copyKillPoints(round: string, areas: number[], topic: string): KillPoint[] {
  const { target, backups } = layout(round);
  const journal = () => existsSync(join(backups, 'memory.adopt.json'));
  const points: KillPoint[] = [
    { label: 'journal written', when: journal, passed: journal },
    {
      label: 'large file half copied',
      when: () => {
        const partial = existsSync(target) ? readdirSync(target).find((n) => n.startsWith('.model.bin.persist-partial-')) : undefined;
        return partial !== undefined && (statSync(join(target, partial), { throwIfNoEntry: false })?.size ?? 0) >= LARGE_FILE_BYTES / 2;
      },
      passed: () => existsSync(join(target, 'model.bin')),
    },
  ];
  for (const area of areas) {
    const started = () => existsSync(join(target, `area-${area}`, topic));
    points.push({ label: `area-${area}/${topic} started`, when: started, passed: started });
  }
  return points;
}

async function freshRound(name: string): Promise<string> {
  const round = join(root, name);
  const { workspace, mount } = layout(round);
  await fs.mkdir(workspace, { recursive: true });
  await fs.mkdir(mount, { recursive: true });
  // Hard links: a cheap copy of the tree (adopt reads the files and renames the folder, never writes them).
  const cp = spawnSync('cp', ['-al', pristine, join(workspace, 'memory')]);
  expect(cp.status).toBe(0);
  await writeSpec(round);
  return round;
}

async function assertAdopted(runner: Runner, round: string): Promise<void> {
  const { link, target, backups } = layout(round);
  expect(await fs.readlink(link)).toBe(target);
  const wrong: string[] = [];
  for (const [rel, entry] of manifest) {
    // Read through the link: what the agent will see.
    if (!(await holds(link, rel, entry, true))) wrong.push(rel);
    else if (entry.type === 'file' && ((await fs.stat(join(link, rel))).mode & 0o777) !== entry.mode) wrong.push(`${rel} (mode)`);
  }
  expect(wrong).toEqual([]);
  const inMount = (await fs.readdir(target, { recursive: true })).map(String);
  expect(inMount.filter((n) => n.includes('.persist-partial-') || n.includes('.persist-conflict-'))).toEqual([]);
  expect(inMount.length).toBe(manifest.size);
  expect(existsSync(join(backups, 'memory.adopt.json'))).toBe(false);
  const plan = runner.plan(round);
  expect(plan.clean, plan.output).toBe(true);
}

let runner: Runner;

beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'persist-crash-'));
  pristine = join(root, 'pristine');
  const driver = join(root, 'adopt-driver.mjs');
  await Promise.all([
    makeTree(),
    build({
      entryPoints: [join(repo, 'test', 'crash', 'adopt-driver.ts')],
      outfile: driver,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['execa'], // only used by Host.run, which the driver never calls
      logLevel: 'warning',
    }),
  ]);
  await takeManifest(pristine);
  runner = await chooseRunner(driver);
});

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

it('an adopt killed at any moment resumes with nothing lost', { timeout: 300_000 }, async () => {
  // A full run first: it checks the plain path and times the run (the verifying pass now comes
  // before the move of the original into the backup, the commit point), over which kills are
  // spread by time.
  const calibration = await freshRound('calibration');
  const committedIn = (round: string) => () => existsSync(layout(round).backups) && readdirSync(layout(round).backups, { withFileTypes: true }).some((e) => e.isDirectory());
  const full = await runApply(runner, calibration, null, committedIn(calibration));
  expect(full.watchedAtMs).toBeDefined();
  const verifyMs = Math.max(full.elapsedMs, 100);
  await assertAdopted(runner, calibration);
  await fs.rm(calibration, { recursive: true, force: true });

  const states = new Map<State, number>();
  const timeline: string[] = [];
  let kills = 0;
  const killAt = async (round: string, point: KillPoint): Promise<'killed' | 'finished'> => {
    const { outcome } = await runApply(runner, round, point);
    if (outcome === 'killed') {
      kills++;
      const state = await stateOf(round);
      states.set(state, (states.get(state) ?? 0) + 1);
      timeline.push(`${point.label}: ${state}`);
      await assertNothingLost(round);
    }
    return outcome;
  };

  for (let r = 0; r < ROUNDS; r++) {
    const round = await freshRound(`round-${r}`);
    // While the process loads and observes, then at each progress point of the bulk copy
    // (a resumed run first skips what is already there, then carries on).
    await killAt(round, { label: `after ${20 + r * 40} ms`, afterMs: 20 + r * 40 });
    for (const point of copyKillPoints(round, [0, 1, 2, 3, 4], r === 0 ? 'topic-2' : 'topic-30')) {
      if (!point.passed!()) await killAt(round, point);
    }
    // Through the verifying pass and the link: a resumed run restarts the verification, so kill
    // it later and later until a run gets to the end by itself.
    const step = (verifyMs * (1 + 0.15 * r)) / 6;
    let finished = false;
    for (let k = 1; k <= 12 && !finished; k++) {
      finished = (await killAt(round, { label: `after ${Math.round(k * step)} ms`, afterMs: k * step })) === 'finished';
    }
    if (!finished) expect((await runApply(runner, round, null)).outcome).toBe('finished');
    await assertAdopted(runner, round);
    await fs.rm(round, { recursive: true, force: true });
  }
  // Right after the commit point (the original moved into the backup, the link swapped in), in a
  // round of its own: the window is two renames and the settling pass, so the kill may land once
  // the adopt is done. The states a kill there leaves are also made by hand and resumed in
  // test/resources/link.test.ts ("resumes from every state an interrupted adopt can leave").
  const last = await freshRound('committed');
  await fs.mkdir(layout(last).backups, { mode: 0o700 }); // watched for the backup to appear (the adopt makes it so too)
  await killAt(last, { label: 'committed', when: committedIn(last), watchDir: layout(last).backups });
  expect((await runApply(runner, last, null)).outcome).toBe('finished');
  await assertAdopted(runner, last);
  await fs.rm(last, { recursive: true, force: true });

  console.log(
    `adopt crash test (${runner.name}): ${manifest.size} entries, full run ${Math.round(full.elapsedMs)} ms ` +
      `(kill step ${Math.round(verifyMs / 6)} ms), ${kills} kills; states after a kill: ` +
      `${[...states].map(([s, n]) => `${s} ${n}`).join(', ')}\n  ${timeline.join('\n  ')}`,
  );
  // Every kill left nothing lost (assertNothingLost above); enough of them landed, and inside the copy.
  expect(kills).toBeGreaterThanOrEqual(12);
  expect(states.get('copying') ?? 0).toBeGreaterThan(0);
});
