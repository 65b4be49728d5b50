// Shared by the hardening tests: run the built CLI as a real process (from a private copy of
// bin/ and dist/, so that a rebuild by a concurrent test run cannot swap chunks under it), and
// fingerprint folders with sha256 to prove that nothing was lost.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import { autoTempDir, removeFolder } from '../helpers/temp.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/** A temporary folder, removed when the test (or, made outside a test, the file) ends. */
export function tempDir(prefix = 'persist-hardening-'): string {
  return autoTempDir(prefix);
}

let snapshot: string | undefined;
let snapshotDir: string | undefined;
afterAll(() => {
  if (snapshotDir) removeFolder(snapshotDir);
  snapshot = snapshotDir = undefined;
});

/** Path of `bin/persist.js` in a private copy of the built CLI (made once per test file). */
export function cliPath(): string {
  if (!snapshot) {
    // Kept for the whole file (every test runs the same copy), removed when the file ends.
    const copy = mkdtempSync(join(tmpdir(), 'persist-cli-'));
    snapshotDir = copy;
    chmodSync(copy, 0o755); // readable by a test that drops root
    cpSync(join(ROOT, 'bin'), join(copy, 'bin'), { recursive: true });
    cpSync(join(ROOT, 'dist'), join(copy, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
    snapshot = join(copy, 'bin', 'persist.js');
  }
  return snapshot;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Pid of the CLI process. */
  pid: number;
}

export interface RunOptions {
  cwd: string;
  /** The complete environment (PATH and NO_COLOR are added unless given). */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Run the CLI under another command (e.g. setpriv to drop root). */
  wrapper?: string[];
  /** Called every few milliseconds while the process runs. */
  whileRunning?: () => void;
}

/** Run `persist ARGS` and collect its output; kills it (and fails) after `timeoutMs`. */
export function runPersist(args: string[], options: RunOptions): Promise<RunResult> {
  // The test's TMPDIR too, so that whatever the CLI leaves in a temporary folder is seen by the run's check.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...options.env };
  const [command, ...prefix] = options.wrapper ?? [];
  const child = command
    ? spawn(command, [...prefix, process.execPath, cliPath(), ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [cliPath(), ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const poll = options.whileRunning ? setInterval(options.whileRunning, 5) : undefined;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`persist ${args.join(' ')} did not finish within ${options.timeoutMs ?? 60_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolvePromise({ code, stdout, stderr, pid: child.pid ?? -1 });
    });
  });
}

/** A stack frame line, as Node prints them. */
export const STACK_FRAME = /^\s+at /m;

/**
 * Every entry under `dir`: files by sha256 of their content, symlinks by target, directories by name.
 * Paths are relative; `skip` leaves out names (e.g. persist's own bookkeeping).
 */
export function treeManifest(dir: string, skip: (relative: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (folder: string, prefix: string): void => {
    for (const name of readdirSync(folder).sort()) {
      const rel = prefix ? `${prefix}/${name}` : name;
      if (skip(rel)) continue;
      const path = join(folder, name);
      const info = lstatSync(path);
      if (info.isSymbolicLink()) out[rel] = `symlink ${readlinkSync(path)}`;
      else if (info.isDirectory()) {
        out[rel] = 'dir';
        walk(path, rel);
      } else if (info.isFile()) out[rel] = `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
      else out[rel] = 'special';
    }
  };
  walk(dir, '');
  return out;
}

/** Only the regular files of a manifest (content), for comparing copies whose modes may differ. */
export function filesOf(manifest: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(manifest).filter(([, value]) => value.startsWith('file ')));
}

/** Run git in `cwd` with a fixed identity and no system config; its output without the last newline. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_CONFIG_NOSYSTEM: '1' },
  }).replace(/\n$/, '');
}
