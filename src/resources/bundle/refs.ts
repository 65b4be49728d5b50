// Reads a repository's HEAD and refs straight from its git directory, without spawning git:
// plan runs on every container boot and must stay fast. Handles loose refs, packed-refs (with
// peeled `^` lines), a `.git` file (`gitdir: ...` of worktrees and submodules, with `commondir`)
// and repositories without commits. The reftable ref storage is refused with a clear error.
import { isAbsolute, join, resolve } from 'node:path';
import { PersistError } from '../../errors.js';
import type { Host } from '../../host/types.js';

/**
 * The refs a persist bundle holds, and so the refs compared with it: every ref under `refs/`
 * (branches, tags, notes, custom refs) except these. Remote-tracking refs (and git maintenance's
 * prefetched copies of them) are left out on purpose: they can be fetched again from the remote,
 * and every `git fetch` would otherwise make a new bundle. `refs/stash` is saved entry by entry
 * from its reflog (as `refs/persist/stash/<n>`, see STASH_REF_PREFIX), and `refs/persist/` is
 * persist's own (the work tree snapshot): both are computed, not copied. HEAD is recorded beside them.
 */
export const UNBUNDLED_REF_PREFIXES = ['refs/remotes/', 'refs/prefetch/', 'refs/persist/'] as const;
export const STASH_REF = 'refs/stash';
/** `refs/persist/stash/0` is `stash@{0}` (the newest entry), `/1` is `stash@{1}` ... */
export const STASH_REF_PREFIX = 'refs/persist/stash/';
/**
 * `refs/persist/shallow/<sha>` → `<sha>`: one per commit of a shallow repo's boundary (the lines of
 * `.git/shallow`, commits whose parents the repo does not hold). A bundle made of a shallow repo
 * lists no prerequisites and holds those commits without their parents; a restore writes
 * `.git/shallow` back from these refs, without which git cannot walk the history (`git log`:
 * "Could not read <parent>") nor make the next bundle.
 */
export const SHALLOW_REF_PREFIX = 'refs/persist/shallow/';

/** The shallow refs of a boundary (see SHALLOW_REF_PREFIX). */
export function shallowRefs(boundary: readonly string[]): Record<string, string> {
  return Object.fromEntries([...boundary].sort().map((sha) => [`${SHALLOW_REF_PREFIX}${sha}`, sha]));
}

export function isBundledRef(name: string): boolean {
  return name.startsWith('refs/') && name !== STASH_REF && !UNBUNDLED_REF_PREFIXES.some((prefix) => name.startsWith(prefix));
}

export type HeadState =
  /** HEAD names a branch; `sha` is null while the branch has no commits (unborn). */
  | { kind: 'symbolic'; ref: string; sha: string | null }
  | { kind: 'detached'; sha: string };

export interface RepoRefs {
  /** The directory holding HEAD (differs from `commonDir` in a linked worktree). */
  gitDir: string;
  /** The directory holding refs/ and packed-refs. */
  commonDir: string;
  head: HeadState;
  /** Ref name → object id (not peeled), sorted by name. Only bundled refs (see isBundledRef). */
  refs: Record<string, string>;
  /** The stash entries, newest (`stash@{0}`) first, read from `refs/stash`'s reflog. */
  stash: string[];
  /** Where `refs/persist/worktree` points: the snapshot this repo last saved or restored. */
  worktreeRef: string | null;
  /** The commits listed in `.git/shallow` (sorted; empty for a complete repo). */
  shallow: string[];
}

/** A `.git` that cannot be read as a repository. */
export class GitRefsError extends PersistError {}

const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const MAX_SYMREF_DEPTH = 5;

/**
 * The git directory of the work tree `repo`: `<repo>/.git` when it is a directory, the target of
 * a `gitdir:` line when it is a file; null when there is no `.git` at all.
 */
export async function findGitDir(host: Host, repo: string): Promise<string | null> {
  const dotGit = join(repo, '.git');
  const info = await host.lstat(dotGit);
  if (!info) return null;
  if (info.type === 'dir') return dotGit;
  if (info.type === 'symlink') {
    const target = await host.stat(dotGit);
    if (target?.type === 'dir') return dotGit;
    throw new GitRefsError(`${dotGit} is a symlink that does not lead to a directory`);
  }
  if (info.type !== 'file') throw new GitRefsError(`${dotGit} is neither a directory nor a gitdir file`);
  const text = (await host.readFile(dotGit)).toString('utf8').trim();
  const match = /^gitdir:\s*(.+)$/.exec(text);
  if (!match?.[1]) throw new GitRefsError(`${dotGit}: expected a line "gitdir: <path>", found ${JSON.stringify(text.slice(0, 80))}`);
  const gitDir = resolve(repo, match[1].trim());
  if ((await host.stat(gitDir))?.type !== 'dir') throw new GitRefsError(`${dotGit} points to ${gitDir}, which is not a directory`);
  return gitDir;
}

/** A linked worktree's git directory names the shared one in its `commondir` file. */
async function findCommonDir(host: Host, gitDir: string): Promise<string> {
  const file = join(gitDir, 'commondir');
  if (!(await host.lstat(file))) return gitDir;
  const relative = (await host.readFile(file)).toString('utf8').trim();
  return isAbsolute(relative) ? relative : resolve(gitDir, relative);
}

function parseRefValue(text: string, where: string): { sha: string } | { symref: string } {
  const value = text.trim();
  if (value.startsWith('ref:')) return { symref: value.slice(4).trim() };
  if (OBJECT_ID.test(value)) return { sha: value };
  throw new GitRefsError(`${where}: expected an object id or "ref: <name>", found ${JSON.stringify(value.slice(0, 80))}`);
}

/** packed-refs: `<sha> <name>` lines; a `^<sha>` line gives the peeled value of the tag above it. */
export function parsePackedRefs(text: string, where: string): Map<string, string> {
  const refs = new Map<string, string>();
  let previous: string | null = null;
  text.split('\n').forEach((line, index) => {
    if (line === '' || line.startsWith('#')) return;
    const at = `${where}:${index + 1}`;
    if (line.startsWith('^')) {
      if (!previous || !OBJECT_ID.test(line.slice(1))) throw new GitRefsError(`${at}: unexpected peeled line ${JSON.stringify(line)}`);
      previous = null; // at most one peeled line per ref
      return;
    }
    const space = line.indexOf(' ');
    const sha = line.slice(0, space);
    const name = line.slice(space + 1);
    if (space < 0 || !OBJECT_ID.test(sha) || !name.startsWith('refs/')) {
      throw new GitRefsError(`${at}: expected "<object id> refs/...", found ${JSON.stringify(line.slice(0, 120))}`);
    }
    refs.set(name, sha);
    previous = name;
  });
  return refs;
}

/** Loose ref files under `<commonDir>/<prefix>`, recursively: name → raw content (bundled refs only). */
async function readLooseRefs(host: Host, commonDir: string, prefix: string, into: Map<string, string>): Promise<void> {
  if (UNBUNDLED_REF_PREFIXES.some((skipped) => prefix.startsWith(skipped))) return; // refs/remotes/ is never walked
  const dir = join(commonDir, prefix);
  const info = await host.lstat(dir);
  if (info?.type !== 'dir') return;
  // Concurrently: a repo with hundreds of loose tags would otherwise cost ~0.2 ms per ref.
  await Promise.all(
    (await host.readdir(dir)).map(async (entry) => {
      const name = `${prefix}${entry}`;
      const entryInfo = await host.lstat(join(commonDir, name));
      if (entryInfo?.type === 'dir') await readLooseRefs(host, commonDir, `${name}/`, into);
      else if (entryInfo?.type === 'file' && !entry.endsWith('.lock') && isBundledRef(name)) into.set(name, (await host.readFile(join(commonDir, name))).toString('utf8'));
    }),
  );
}

/** Read HEAD and the bundled refs of the git directory `gitDir`. */
export async function readRefsFromGitDir(host: Host, gitDir: string): Promise<RepoRefs> {
  const commonDir = await findCommonDir(host, gitDir);
  if (await host.lstat(join(commonDir, 'reftable'))) {
    throw new GitRefsError(`${commonDir} uses the reftable ref storage, which persist cannot read yet; convert it with "git refs migrate --ref-format=files"`);
  }

  const packedFile = join(commonDir, 'packed-refs');
  const packed = (await host.lstat(packedFile)) ? parsePackedRefs((await host.readFile(packedFile)).toString('utf8'), packedFile) : new Map<string, string>();
  const loose = new Map<string, string>();
  await readLooseRefs(host, commonDir, 'refs/', loose);

  // Resolves a ref name (following symbolic refs) to an object id; null when it does not exist.
  const resolveRef = async (name: string, depth: number): Promise<string | null> => {
    if (depth > MAX_SYMREF_DEPTH) throw new GitRefsError(`${commonDir}: symbolic ref ${name} nests deeper than ${MAX_SYMREF_DEPTH}`);
    let raw = loose.get(name);
    if (raw === undefined && !isBundledRef(name)) {
      // Refs outside the bundled set are read on demand only (HEAD might point anywhere).
      const file = join(commonDir, name);
      if ((await host.lstat(file))?.type === 'file') raw = (await host.readFile(file)).toString('utf8');
    }
    if (raw === undefined) return packed.get(name) ?? null;
    const value = parseRefValue(raw, join(commonDir, name));
    return 'sha' in value ? value.sha : resolveRef(value.symref, depth + 1);
  };

  const refs: Record<string, string> = {};
  const names = [...new Set([...loose.keys(), ...[...packed.keys()].filter(isBundledRef)])].sort();
  for (const name of names) {
    const sha = await resolveRef(name, 0);
    if (sha) refs[name] = sha;
  }

  const headFile = join(gitDir, 'HEAD');
  if (!(await host.lstat(headFile))) throw new GitRefsError(`${gitDir} has no HEAD file: not a git directory`);
  const headValue = parseRefValue((await host.readFile(headFile)).toString('utf8'), headFile);
  const head: HeadState =
    'sha' in headValue
      ? { kind: 'detached', sha: headValue.sha }
      : { kind: 'symbolic', ref: headValue.symref, sha: await resolveRef(headValue.symref, 1) };
  const worktreeRef = await resolveRef('refs/persist/worktree', 0);
  const stash = (await resolveRef(STASH_REF, 0)) ? await readStashEntries(host, commonDir) : [];
  return { gitDir, commonDir, head, refs, stash, worktreeRef, shallow: await readShallow(host, commonDir) };
}

/** The commit ids `<commonDir>/shallow` lists (git's shallow boundary), sorted; [] when there is none. */
export async function readShallow(host: Host, commonDir: string): Promise<string[]> {
  const file = join(commonDir, 'shallow');
  if ((await host.lstat(file))?.type !== 'file') return [];
  const lines = (await host.readFile(file)).toString('utf8').split('\n').map((line) => line.trim());
  return [...new Set(lines.filter((line) => OBJECT_ID.test(line)))].sort();
}

/**
 * The stash's entries, newest first: the new-value column of `logs/refs/stash`, last line first
 * (git keeps one reflog line per entry; `git stash drop` rewrites the file).
 */
async function readStashEntries(host: Host, commonDir: string): Promise<string[]> {
  const file = join(commonDir, 'logs', STASH_REF);
  if ((await host.lstat(file))?.type !== 'file') return [];
  const entries: string[] = [];
  for (const line of (await host.readFile(file)).toString('utf8').split('\n')) {
    const sha = line.split(' ')[1];
    if (sha && OBJECT_ID.test(sha) && !/^0+$/.test(sha)) entries.push(sha);
  }
  return entries.reverse();
}

/** HEAD and bundled refs of the work tree `repo`; null when it has no `.git`. */
export async function readRepoRefs(host: Host, repo: string): Promise<RepoRefs | null> {
  const gitDir = await findGitDir(host, repo);
  return gitDir ? readRefsFromGitDir(host, gitDir) : null;
}
