// Start-up benchmark: `persist validate` of specs/moltbot.yaml and `persist plan` of converged
// local specs, each against `node -e 0` measured in the same run, interleaved. The converged specs
// are made by `persist apply`, which leaves the spec's parse in the state folder's cache and the
// bundled repo's work tree recorded (docs/worktree.md), as on a real machine.
//
// Besides the limits (validate, plan of 5 links and 500 links), rows that add one part at a time
// say where the milliseconds go: the launcher and command line (`--version`), a plan of the
// smallest spec, links, a sync and a file, the bundle; and the bundle's work tree checked three
// ways: by stats alone (the default for a small repo), by one `git status` (as for a repo too big
// to record whole), and with no record (the throwaway snapshot of a new container). Each row also
// says how many processes the command starts.
// Usage: node bench/startup.mjs [rounds]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interleave, row } from './lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'bin', 'persist.js');
const rounds = Number(process.argv[2] ?? 30);
const node = process.execPath;
/** Longer than the window in which persist does not trust a folder's stat (docs/worktree.md). */
const SETTLE_MS = 3_500;

function specText({ links = 0, sync = false, file = false, bundle = false }) {
  const lines = ['version: 1', 'workspace: ./workspace', 'buckets:', '  data:', '    name: bench', '    mount: { backend: local, path: ./bucket }'];
  if (links) lines.push('links:', ...Array.from({ length: links }, (_, i) => `  l${i}: workspace/l${i}`));
  if (bundle) lines.push('bundles:', '  repo: { repo: ./repo, file: bundles/repo.bundle }');
  if (sync) lines.push('syncs:', '  state: { from: ./state, to: state }');
  if (file) lines.push('files:', '  credentials: { from: credentials.env, to: ./workspace-files/credentials.env, mode: "0600" }');
  return `${lines.join('\n')}\n`;
}

/** A folder with the spec's local side; the repo has one untracked file (uncommitted work). */
function fixture(dir, parts) {
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'db.sqlite'), 'x'.repeat(4096));
  mkdirSync(join(dir, 'bucket'), { recursive: true });
  writeFileSync(join(dir, 'bucket', 'credentials.env'), 'TOKEN=x\n');
  mkdirSync(join(dir, 'workspace'), { recursive: true });
  if (parts.bundle) {
    const repo = join(dir, 'repo');
    mkdirSync(repo, { recursive: true });
    execFileSync('git', ['init', '-q', '-b', 'main', repo]);
    writeFileSync(join(repo, 'README.md'), 'bench\n');
    execFileSync('git', ['-C', repo, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'init', '--allow-empty']);
  }
  writeFileSync(join(dir, 'persist.yaml'), specText(parts));
  return { dir, file: join(dir, 'persist.yaml'), env: { ...process.env, PERSIST_STATE_DIR: join(dir, '.state') } };
}

function converge(spec) {
  execFileSync(node, [cli, 'apply', '-f', spec.file, '--auto-approve'], { env: spec.env, stdio: 'pipe' });
  const check = execFileSync(node, [cli, 'plan', '-f', spec.file, '--detailed-exitcode'], { env: spec.env, encoding: 'utf8' });
  if (!check.includes('No changes')) throw new Error(`bench spec did not converge:\n${check}`);
}

/** Change the work-tree record of a converged spec: `edit` maps the record to a new one, or null (removed). */
function editRecord(spec, edit) {
  const folder = join(spec.dir, '.state', 'worktrees');
  for (const name of readdirSync(folder)) {
    const edited = edit(JSON.parse(readFileSync(join(folder, name), 'utf8')));
    if (edited === null) rmSync(join(folder, name));
    else writeFileSync(join(folder, name), JSON.stringify(edited));
  }
}

/** How many processes a command starts (persist --debug logs each). */
function processes(args, env) {
  const { stderr } = spawnSync(node, [cli, '--debug', ...args], { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  return stderr.split('\n').filter((line) => line.startsWith('persist debug: run ')).length;
}

const dir = mkdtempSync(join(tmpdir(), 'persist-bench-'));
try {
  const specs = {
    smallest: fixture(join(dir, 'smallest'), { file: true }),
    links: fixture(join(dir, 'links'), { links: 5, file: true }),
    syncs: fixture(join(dir, 'syncs'), { links: 5, sync: true, file: true }),
    five: fixture(join(dir, 'five'), { links: 5, sync: true, file: true, bundle: true }),
    many: fixture(join(dir, 'many'), { links: 500, sync: true, file: true, bundle: true }),
    status: fixture(join(dir, 'status'), { links: 5, sync: true, file: true, bundle: true }),
    none: fixture(join(dir, 'none'), { links: 5, sync: true, file: true, bundle: true }),
  };
  // A repo written in the same second as its save is not trusted by stats (docs/worktree.md).
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  for (const spec of Object.values(specs)) converge(spec);
  editRecord(specs.status, (record) => ({ ...record, whole: undefined })); // as for a repo too big to record whole
  editRecord(specs.none, () => null); // as in a new container
  const moltbotEnv = { ...process.env, CF_ACCOUNT_ID: 'bench', R2_ACCESS_KEY_ID: 'bench', R2_SECRET_ACCESS_KEY: 'bench' };

  const plan = (spec) => ({ args: ['plan', '-f', spec.file], env: spec.env });
  const cases = [
    { name: 'node -e 0 (baseline)', command: node, args: ['-e', '0'] },
    { name: 'persist --version', run: { args: ['--version'], env: process.env } },
    { name: 'persist validate -f specs/moltbot.yaml', run: { args: ['validate', '-f', join(root, 'specs/moltbot.yaml')], env: moltbotEnv }, limit: 1.6 },
    { name: 'plan: mount + file', run: plan(specs.smallest) },
    { name: 'plan: + 5 links', run: plan(specs.links) },
    { name: 'plan: + sync', run: plan(specs.syncs) },
    { name: 'plan (converged, 5 links): + bundle', run: plan(specs.five), limit: 2.0 },
    { name: 'plan (converged, 500 links)', run: plan(specs.many) },
    { name: 'plan, bundle checked by git status', run: plan(specs.status) },
    { name: 'plan, bundle with no record', run: plan(specs.none) },
  ].map((c) => (c.run ? { ...c, command: node, args: [cli, ...c.run.args], options: { env: c.run.env, expectStatus: 0 } } : c));

  const results = interleave(cases, rounds);
  const base = results['node -e 0 (baseline)'];
  console.log(`start-up, median of ${rounds} interleaved runs, node ${process.version}`);
  for (const c of cases) {
    const started = c.run ? processes(c.run.args, c.run.env) : null;
    const note = started === null ? '' : `  (${started} process${started === 1 ? '' : 'es'})`;
    console.log(`${row(c.name, results[c.name], base, c.limit)}${note}`);
  }
  const ratio = results['plan (converged, 500 links)'] / results['plan (converged, 5 links): + bundle'];
  console.log(`500 links vs 5 links: ${ratio.toFixed(2)}x ${ratio <= 1.5 ? 'ok' : 'OVER'} (limit 1.5x)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
