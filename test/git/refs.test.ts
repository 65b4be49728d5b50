import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GitRefsError, parsePackedRefs, readRepoRefs } from '../../src/resources/bundle/refs.js';
import { RealHost } from '../../src/host/real.js';
import { commit, forEachRef, git, initRepo, tempDir } from './helpers.js';

const host = new RealHost();
let dir: { path: string; cleanup: () => void };
beforeEach(() => (dir = tempDir()));
afterEach(() => dir.cleanup());

/** A repo with two branches, a lightweight and an annotated tag, and a remote-tracking ref. */
function richRepo(): string {
  const repo = initRepo(join(dir.path, 'repo'), { 'a.txt': 'one\n' });
  git(repo, 'branch', 'feature/deep');
  commit(repo, { 'b.txt': 'two\n' }, 'second');
  git(repo, 'tag', 'light');
  git(repo, 'tag', '-a', 'v1', '-m', 'version 1');
  git(repo, 'update-ref', 'refs/remotes/origin/main', 'HEAD~1');
  return repo;
}

describe('readRepoRefs', () => {
  it('reads loose refs and a symbolic HEAD like git does, without remote-tracking refs', async () => {
    const repo = richRepo();
    const read = await readRepoRefs(host, repo);
    expect(read?.refs).toEqual(forEachRef(repo));
    expect(Object.keys(read!.refs)).toEqual(['refs/heads/feature/deep', 'refs/heads/main', 'refs/tags/light', 'refs/tags/v1']);
    expect(read?.head).toEqual({ kind: 'symbolic', ref: git(repo, 'symbolic-ref', 'HEAD'), sha: git(repo, 'rev-parse', 'HEAD') });
    // The annotated tag is recorded as the tag object, not the commit it points to.
    expect(read?.refs['refs/tags/v1']).toBe(git(repo, 'rev-parse', 'v1'));
    expect(read?.refs['refs/tags/v1']).not.toBe(git(repo, 'rev-parse', 'v1^{commit}'));
  });

  it('reads packed refs with peeled lines, and loose refs override packed ones', async () => {
    const repo = richRepo();
    git(repo, 'pack-refs', '--all');
    const packed = readFileSync(join(repo, '.git', 'packed-refs'), 'utf8');
    expect(packed).toMatch(/^\^[0-9a-f]{40}$/m); // the annotated tag's peeled line
    expect((await readRepoRefs(host, repo))?.refs).toEqual(forEachRef(repo));

    const newer = commit(repo, { 'c.txt': 'three\n' }, 'third'); // main becomes loose again
    const read = await readRepoRefs(host, repo);
    expect(read?.refs).toEqual(forEachRef(repo));
    expect(read?.refs['refs/heads/main']).toBe(newer);
    expect(read?.head.sha).toBe(newer);
  });

  it('reads a detached HEAD', async () => {
    const repo = richRepo();
    git(repo, 'checkout', '-q', '--detach', 'HEAD~1');
    const read = await readRepoRefs(host, repo);
    expect(read?.head).toEqual({ kind: 'detached', sha: git(repo, 'rev-parse', 'HEAD') });
  });

  it('follows a .git file (separate git dir) and a linked worktree with its own HEAD', async () => {
    const repo = join(dir.path, 'separate');
    initRepo(repo);
    git(dir.path, 'init', '-q', '-b', 'main', `--separate-git-dir=${join(dir.path, 'store.git')}`, repo);
    commit(repo, { 'a.txt': 'x\n' }, 'first');
    expect(readFileSync(join(repo, '.git'), 'utf8')).toMatch(/^gitdir: /);
    const separate = await readRepoRefs(host, repo);
    expect(separate?.gitDir).toBe(join(dir.path, 'store.git'));
    expect(separate?.refs).toEqual(forEachRef(repo));

    const worktree = join(dir.path, 'wt');
    git(repo, 'worktree', 'add', '-q', '-b', 'side', worktree);
    commit(worktree, { 'w.txt': 'w\n' }, 'in worktree');
    const read = await readRepoRefs(host, worktree);
    expect(read?.commonDir).toBe(join(dir.path, 'store.git'));
    expect(read?.head).toEqual({ kind: 'symbolic', ref: 'refs/heads/side', sha: git(worktree, 'rev-parse', 'HEAD') });
    expect(read?.refs).toEqual(forEachRef(repo));
  });

  it('reads notes and custom refs (loose and packed), the stash entries newest first and persist\'s snapshot ref, but no remote-tracking ref', async () => {
    const repo = richRepo();
    git(repo, 'notes', 'add', '-m', 'note', 'HEAD');
    git(repo, 'update-ref', 'refs/custom/packed', 'HEAD~1');
    git(repo, 'pack-refs', '--all');
    git(repo, 'update-ref', 'refs/custom/loose', 'HEAD');
    git(repo, 'update-ref', 'refs/prefetch/remotes/origin/main', 'HEAD');
    git(repo, 'update-ref', 'refs/persist/worktree', 'HEAD~1');
    commit(repo, { 's.txt': 'tracked\n' }, 'third');
    for (const text of ['first stash\n', 'second stash\n']) {
      writeFileSync(join(repo, 's.txt'), text);
      git(repo, 'stash', 'push', '-q');
    }
    const read = await readRepoRefs(host, repo);
    const all = git(repo, 'for-each-ref', '--format=%(refname)').split('\n');
    expect(all).toEqual(expect.arrayContaining(['refs/remotes/origin/main', 'refs/stash', 'refs/persist/worktree', 'refs/prefetch/remotes/origin/main']));
    expect(Object.keys(read!.refs)).toEqual(all.filter((name) => !/^refs\/(remotes|prefetch|persist)\/|^refs\/stash$/.test(name)).sort());
    expect(Object.keys(read!.refs)).toEqual(expect.arrayContaining(['refs/notes/commits', 'refs/custom/packed', 'refs/custom/loose']));
    expect(read!.stash).toEqual([git(repo, 'rev-parse', 'stash@{0}'), git(repo, 'rev-parse', 'stash@{1}')]);
    expect(read!.worktreeRef).toBe(git(repo, 'rev-parse', 'refs/persist/worktree'));
    git(repo, 'stash', 'drop', '-q', 'stash@{0}');
    expect((await readRepoRefs(host, repo))!.stash).toEqual([git(repo, 'rev-parse', 'stash@{0}')]);
    git(repo, 'stash', 'clear');
    expect((await readRepoRefs(host, repo))!.stash).toEqual([]);
  });

  it('reads a repository without commits, and returns null without .git', async () => {
    const repo = initRepo(join(dir.path, 'empty'));
    expect(await readRepoRefs(host, repo)).toMatchObject({ head: { kind: 'symbolic', ref: 'refs/heads/main', sha: null }, refs: {} });
    expect(await readRepoRefs(host, dir.path)).toBeNull();
  });

  it('rejects a bad .git file and a corrupt packed-refs line, naming the file', async () => {
    writeFileSync(join(dir.path, '.git'), 'nonsense\n');
    await expect(readRepoRefs(host, dir.path)).rejects.toThrow(GitRefsError);
    await expect(readRepoRefs(host, dir.path)).rejects.toThrow(`${join(dir.path, '.git')}: expected a line "gitdir: <path>"`);

    const repo = initRepo(join(dir.path, 'repo'), { 'a.txt': 'a\n' });
    git(repo, 'pack-refs', '--all');
    writeFileSync(join(repo, '.git', 'packed-refs'), 'zzzz refs/heads/bad\n', { flag: 'a' });
    await expect(readRepoRefs(host, repo)).rejects.toThrow(/packed-refs:\d+: expected "<object id> refs\/\.\.\."/);
  });
});

describe('parsePackedRefs', () => {
  it('parses sha1 and sha256 ids, skips the header and peeled lines, and rejects a stray peeled line', () => {
    const sha1 = 'a'.repeat(40);
    const sha256 = 'b'.repeat(64);
    const text = `# pack-refs with: peeled fully-peeled sorted \n${sha1} refs/tags/v1\n^${'c'.repeat(40)}\n${sha256} refs/heads/main\n`;
    expect([...parsePackedRefs(text, 'p')]).toEqual([
      ['refs/tags/v1', sha1],
      ['refs/heads/main', sha256],
    ]);
    expect(() => parsePackedRefs(`^${sha1}\n`, 'p')).toThrow('p:1: unexpected peeled line');
  });
});
