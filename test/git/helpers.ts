// Real git repositories in temporary folders for the git and bundle tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
};

/** Run git in `cwd`; returns stdout without the final newline. */
export function git(cwd: string, ...args: string[]): string {
  return gitWithInput(cwd, '', ...args);
}

export function gitWithInput(cwd: string, input: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] }).replace(/\n$/, '');
}

export function tempDir(prefix = 'persist-git-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function write(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

/** `git init` on branch main, optionally with one commit holding `files`. */
export function initRepo(path: string, files?: Record<string, string>, options: { objectFormat?: 'sha1' | 'sha256' } = {}): string {
  mkdirSync(path, { recursive: true });
  git(path, 'init', '-q', '-b', 'main', `--object-format=${options.objectFormat ?? 'sha1'}`);
  if (files) commit(path, files, 'initial');
  return path;
}

/** Write `files` and commit them; returns the new commit id. */
export function commit(repo: string, files: Record<string, string>, message: string): string {
  for (const [name, content] of Object.entries(files)) write(join(repo, name), content);
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', message);
  return git(repo, 'rev-parse', 'HEAD');
}

/** refs/heads and refs/tags as git reports them: name → object id (not peeled). */
export function forEachRef(repo: string): Record<string, string> {
  const out = git(repo, 'for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags');
  const refs: Record<string, string> = {};
  for (const line of out.split('\n').filter(Boolean)) {
    const [sha, name] = line.split(' ');
    refs[name!] = sha!;
  }
  return refs;
}
