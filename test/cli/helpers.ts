// Integration helpers for the built CLI on the `local` backend: a temporary folder with a spec
// (workspace, bucket folder, links, optionally a bundled git repo, a sync and a restored file),
// `node bin/persist.js` run as a real subprocess, and a snapshot of a whole tree to prove that a
// command wrote nothing.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, onTestFinished } from 'vitest';
import { autoTempDir } from '../helpers/temp.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * A private copy of the built CLI for the test file that imports these helpers: a concurrent test
 * run rebuilds dist/ (global setup), which must not swap chunks under a running test. Made on first
 * use: a file whose tests are all filtered out runs no afterAll to remove it.
 */
let cliCopy: string | null = null;
afterAll(() => {
  if (cliCopy) rmSync(cliCopy, { recursive: true, force: true });
});
function cliBin(): string {
  if (!cliCopy) {
    cliCopy = mkdtempSync(join(tmpdir(), 'persist-clitest-bin-'));
    for (const part of ['bin', 'dist', 'package.json']) cpSync(join(ROOT, part), join(cliCopy, part), { recursive: true });
  }
  return join(cliCopy, 'bin', 'persist.js');
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Text written to the child's standard input (else stdin is closed at once). */
  input?: string;
  timeoutMs?: number;
  /** Standard output is read only after this long: a slow reader, whose pipe fills up. */
  readAfterMs?: number;
}

export interface FixtureOptions {
  /** Link names, each linking `<workspace>/<name>` to `<bucket>/workspace/<name>`; or name -> path in the mount. */
  links?: string[] | Record<string, string>;
  /** A real git repository at ./repo, saved as bundles/repo.bundle. */
  bundle?: boolean;
  /** ./state mirrored to <bucket>/state. */
  sync?: boolean;
  /** <bucket>/creds.env restored to <workspace>/creds.env with mode 0600. */
  file?: boolean;
  /** Extra YAML appended verbatim (e.g. `environments:`). */
  extra?: string;
  /** Bucket folder, relative to the fixture (default ./bucket). */
  bucketPath?: string;
  /** The bucket's `lease: { ttl }` (default: the product's, 60s). */
  leaseTtl?: string;
}

export interface Fixture {
  dir: string;
  spec: string;
  workspace: string;
  bucket: string;
  stateDir: string;
  /** Run the CLI in the fixture's folder with its state dir and NO_COLOR=1. */
  run(args: string[], options?: RunOptions): Promise<CliResult>;
  /** Start the CLI and return the child at once (for signals and concurrent runs). */
  start(args: string[], options?: RunOptions): Running;
  /** `<workspace>/<name>` */
  link(name: string): string;
  /** `<bucket>/workspace/<name>` */
  target(name: string): string;
}

function tempDir(prefix = 'persist-clitest-'): string {
  return autoTempDir(prefix);
}

/** Run git in `cwd` with a fixed identity and no system config; its output trimmed. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_CONFIG_NOSYSTEM: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  }).trim();
}

/** A command's stdout, or an error with its exit code and both outputs. */
export function ok(done: CliResult): string {
  if (done.code !== 0) throw new Error(`exit ${done.code}\n${done.stdout}\n${done.stderr}`);
  return done.stdout;
}

function makeRepo(dir: string): void {
  mkdirSync(dir, { recursive: true });
  git(dir, 'init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'README.md'), '# repo\n');
  git(dir, 'add', 'README.md');
  git(dir, 'commit', '-q', '-m', 'first');
}

export function commit(dir: string, file: string, text: string): void {
  writeFileSync(join(dir, file), text);
  git(dir, 'add', file);
  git(dir, 'commit', '-q', '-m', `change ${file}`);
}

function specText(options: FixtureOptions): string {
  const lines = [
    'version: 1',
    'workspace: ./ws',
    'buckets:',
    '  data:',
    '    name: test-data',
    `    mount: { backend: local, path: ${options.bucketPath ?? './bucket'} }`,
    ...(options.leaseTtl ? [`    lease: { ttl: ${options.leaseTtl} }`] : []),
  ];
  const links = Array.isArray(options.links) ? Object.fromEntries(options.links.map((name) => [name, `workspace/${name}`])) : (options.links ?? {});
  if (Object.keys(links).length > 0) {
    lines.push('links:');
    for (const [name, path] of Object.entries(links)) lines.push(`  ${name}: ${path}`);
  }
  if (options.bundle) lines.push('bundles:', '  repo:', '    repo: ./repo', '    file: bundles/repo.bundle');
  if (options.sync) lines.push('syncs:', '  state:', '    from: ./state', '    to: state');
  if (options.file) lines.push('files:', '  creds:', '    from: creds.env', '    to: ./ws/creds.env', '    mode: "0600"');
  if (options.extra) lines.push(options.extra);
  return `${lines.join('\n')}\n`;
}

/** Call inside a test: the folder is removed when the test ends. */
export function makeFixture(options: FixtureOptions = {}): Fixture {
  const dir = tempDir();
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const spec = join(dir, 'persist.yaml');
  writeFileSync(spec, specText(options));
  if (options.bundle) makeRepo(join(dir, 'repo'));
  if (options.sync) {
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', 'app.db'), 'rows\n');
  }
  const workspace = join(dir, 'ws');
  const bucket = resolve(dir, options.bucketPath ?? './bucket');
  if (options.file) {
    mkdirSync(bucket, { recursive: true });
    writeFileSync(join(bucket, 'creds.env'), 'TOKEN=abc\n');
  }
  const stateDir = join(dir, '.state');
  const baseEnv = { PERSIST_STATE_DIR: stateDir };
  return {
    dir,
    spec,
    workspace,
    bucket,
    stateDir,
    run: (args, run = {}) => runCli(args, dir, { ...run, env: { ...baseEnv, ...run.env } }),
    start: (args, run = {}) => startCli(args, dir, { ...run, env: { ...baseEnv, ...run.env } }),
    link: (name) => join(workspace, name),
    target: (name) => join(bucket, 'workspace', name),
  };
}

export interface Running {
  child: ChildProcess;
  /** Everything printed so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves once stdout contains the string, matches the pattern, or satisfies the test. */
  waitFor(pattern: RegExp | string | ((stdout: string) => boolean), timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
}

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  // A clean environment: nothing of the developer's PERSIST_*/ENVIRONMENT leaks into the tests.
  // The test's TMPDIR too, so that what the CLI leaves in a temporary folder is seen by the run's check.
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...extra };
}

function startCli(args: string[], cwd: string, options: RunOptions = {}): Running {
  const child = spawn(process.execPath, [cliBin(), ...args], { cwd, env: childEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  // A test that fails before it stops the child (a watch, say) must not leave it running.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  const waiters: { test: () => boolean; resolve: () => void }[] = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      if (waiter.test()) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => ((stdout += chunk), check()));
  if (options.readAfterMs !== undefined) {
    child.stdout!.pause();
    setTimeout(() => child.stdout!.resume(), options.readAfterMs);
  }
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin!.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const done = new Promise<CliResult>((resolveDone, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolveDone({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    output: () => ({ stdout, stderr }),
    done,
    waitFor(pattern, timeoutMs = 15_000) {
      const test = () => (typeof pattern === 'string' ? stdout.includes(pattern) : typeof pattern === 'function' ? pattern(stdout) : pattern.test(stdout));
      if (test()) return Promise.resolve();
      return new Promise<void>((resolveWait, reject) => {
        const timeout = setTimeout(() => reject(new Error(`timed out waiting for ${String(pattern)}; stdout so far:\n${stdout}\nstderr:\n${stderr}`)), timeoutMs);
        const waiter = { test, resolve: () => (clearTimeout(timeout), resolveWait()) };
        waiters.push(waiter);
        void done.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timeout);
            reject(new Error(`the CLI exited before printing ${String(pattern)}; stdout:\n${stdout}\nstderr:\n${stderr}`));
          }
        });
      });
    },
  };
}

/**
 * Run the CLI under a pseudo-terminal (util-linux `script`), so that stdin and stdout are a TTY.
 * `input` is typed into the terminal. Resolves to everything the terminal showed.
 */
export function runOnTerminal(args: string[], cwd: string, options: { env?: Record<string, string>; input?: string } = {}): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, cliBin(), ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolveRun, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', TERM: 'xterm', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    if (options.input === undefined) child.stdin!.end();
    else child.stdin!.write(options.input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, output: output.replace(/\r\n/g, '\n') });
    });
  });
}

function runCli(args: string[], cwd: string, options: RunOptions = {}): Promise<CliResult> {
  return startCli(args, cwd, options).done;
}

/** Every entry under `root` (the root included): type, size, mode, mtime and link target. */
export function snapshotTree(root: string): Map<string, string> {
  const entries = new Map<string, string>();
  const visit = (path: string) => {
    const info = lstatSync(path);
    const type = info.isSymbolicLink() ? 'symlink' : info.isDirectory() ? 'dir' : info.isFile() ? 'file' : 'other';
    const extra = type === 'symlink' ? ` -> ${readlinkSync(path)}` : '';
    entries.set(path.slice(root.length) || '/', `${type} size=${info.size} mode=${(info.mode & 0o7777).toString(8)} mtime=${info.mtimeMs}${extra}`);
    if (type === 'dir') for (const name of readdirSync(path).sort()) visit(join(path, name));
  };
  visit(root);
  return entries;
}

/** The differences between two snapshots, one line each (empty when equal). */
export function treeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [path, was] of before) {
    const now = after.get(path);
    if (now === undefined) changes.push(`removed ${path}`);
    else if (now !== was) changes.push(`changed ${path}: ${was} => ${now}`);
  }
  for (const path of after.keys()) if (!before.has(path)) changes.push(`added ${path}`);
  return changes;
}

export const ANSI = /\u001b\[/;

/** A stack trace line (`    at fn (file:1:2)`). */
export const STACK_LINE = /^\s+at /m;

export const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Poll `condition` every 50 ms until it holds or `timeoutMs` passes. */
export async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

/** Apply the fixture's spec and insist that it converged. */
export async function converge(fixture: Fixture): Promise<void> {
  const result = await fixture.run(['apply', '--auto-approve']);
  if (result.code !== 0) throw new Error(`apply failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  const plan = await fixture.run(['plan', '--detailed-exitcode']);
  if (plan.code !== 0) throw new Error(`plan after apply is not clean (${plan.code}):\n${plan.stdout}\n${plan.stderr}`);
}
