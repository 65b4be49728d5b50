// The work tree of a bundled repo, saved as a snapshot commit under persist's own ref
// (`refs/persist/worktree`) and brought back after a restore. Built with a temporary index in a
// private folder: the repo's HEAD, index, stash, refs and reflogs are never touched (the only
// writes into `.git` are objects, `info/exclude` through ensureExcluded, and the ref through
// updateWorktreeRef). Paths never pass through JavaScript (git reads and writes them itself), so
// names that are not UTF-8 survive.
//
// What is saved is what `git add -A` would stage: tracked files as they are in the work tree
// (staged or not), untracked files that are not ignored; ignored files are not saved. Submodules
// and nested repositories are not recursed into: their entry records the commit their HEAD is at
// (a gitlink), not their own uncommitted changes; a restore does not populate them.
//
// persist's own links that lie inside the repo are left out (`leaveOut`, exclude pathspecs; nothing
// is written into `.git` for them): a link is this machine's plumbing (a symlink to its mount path),
// never the user's work, and a folder-only ignore rule (`memory/`) does not ignore a symlink. A
// tracked path there keeps what the index holds. Syncs' folders and files inside the repo are saved
// as any other file (docs/worktree.md).
//
// Ref or temporary ref? updateWorktreeRef writes `refs/persist/worktree` in the repo itself and the
// bundle carries it under that name (bundle-create.ts bundles an exact ref map): the ref keeps the
// snapshot commit reachable (gc never prunes it), says which snapshot this work tree last saved or
// restored (saved-work.ts: only that one may be replaced without a conflict), and gives plan's
// change line a tree to count differences against. `plan` compares a fresh snapshot's sha with the
// bundle's (equal when nothing changed: the commit is deterministic). No reflog is written for it.
//
// On plan's read-only host (`objects: 'temporary'`) the scratch folder comes from scratch.ts and
// every git call is marked read-only: the index and objects go into that folder. The one trace git
// itself may leave in the repo is the mtime of an object that existed already ("freshening", as
// any `git add` does); no file of `.git` is added or changed (test/resources/bundle-worktree.test.ts).
import { createHash, randomBytes } from 'node:crypto';
import { isAbsolute, join, relative } from 'node:path';
import { ActionError } from '../../errors.js';
import { git, splitNul } from './git.js';
import { copyIntoScratch, withScratchDir } from './scratch.js';
import type { Host } from '../../host/types.js';
import { isRecent, readWhole } from '../../host/quiet.js';

export const WORKTREE_REF = 'refs/persist/worktree';

/** The `info/exclude` pattern that keeps persist's backups out of the user's commits and the snapshot. */
export const PERSIST_BACKUPS_PATTERN = '.persist-backups/';

/** Pathspec that keeps `.persist-backups/` (at any depth) out of the snapshot, whatever the excludes say. */
const BACKUPS_PATHSPEC = ':(exclude,glob)**/.persist-backups/**';

/** The pathspecs of a snapshot (and of the status that stands for it): the whole work tree but the backups and `leaveOut` (paths relative to the top). */
function snapshotPathspecs(leaveOut: readonly string[]): string[] {
  return [':/', BACKUPS_PATHSPEC, ...leaveOut.map((path) => `:(top,exclude,literal)${path}`)];
}

const SNAPSHOT_MESSAGE = 'persist worktree snapshot\n';
/** Date of a snapshot without a parent (unborn HEAD): a constant, so that the sha is stable. */
const UNBORN_DATE = '1700000000 +0000';

export interface WorktreeSnapshot {
  /** The snapshot commit. */
  sha: string;
  /** Its tree: the work tree as `git add -A` sees it. */
  tree: string;
  /** The commit HEAD was at (the snapshot's parent), or null for an unborn HEAD. */
  head: string | null;
  /** Whether the tree equals HEAD's tree (unborn: is empty): nothing to save beyond HEAD. */
  clean: boolean;
  /** How it differs from the saved snapshot (only with the `saved` option, and when it differs). */
  changes?: WorktreeChanges;
  /**
   * Paths git could not read (a file it may not open, a folder it may not list, a file that vanished
   * while it was read): left out of the snapshot (a tracked one keeps its staged content), so that
   * everything else is saved. Empty when git read everything.
   */
  skipped: string[];
  /**
   * Files that never read whole (the agent rewrote them at every read): the snapshot holds their
   * last saved version (settleRecent), so that everything else is saved. Empty when all read whole.
   */
  unsettled: string[];
}

export interface SnapshotWorktreeOptions {
  /**
   * Where the new objects go. `repo` (default): into the repo's object store, ready to be bundled.
   * `temporary`: into a private object folder that is deleted afterwards (nothing at all is written
   * into the repo; for a plan that only needs the sha to compare with the saved ref).
   */
  objects?: 'repo' | 'temporary';
  /** The saved snapshot to compare with (null: none saved); see snapshotWorktree. */
  saved?: string | null;
  /**
   * The commit to make the snapshot on (default: HEAD as it is now). An update passes the HEAD
   * its bundle records, so that a commit the agent makes meanwhile cannot part the two.
   */
  head?: string;
  /** Paths (relative to the work tree's top) that are never saved: persist's links inside the repo. */
  leaveOut?: readonly string[];
  timeoutMs?: number;
}

function tempRoot(host: Host): string {
  return join(host.env().TMPDIR ?? '/tmp', `persist-worktree-${host.pid()}-${randomBytes(6).toString('hex')}`);
}

/** git's environment for persist's own commits: no user config needed, a fixed identity. */
function identityEnv(date: string): Record<string, string> {
  return {
    GIT_AUTHOR_NAME: 'persist',
    GIT_AUTHOR_EMAIL: 'persist@localhost',
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_NAME: 'persist',
    GIT_COMMITTER_EMAIL: 'persist@localhost',
    GIT_COMMITTER_DATE: date,
  };
}

async function gitPath(host: Host, repo: string, name: string): Promise<string> {
  const out = (await git(host, ['-C', repo, 'rev-parse', '--git-path', name], { readOnly: true })).stdout.trim();
  return isAbsolute(out) ? out : join(repo, out);
}

/** The work tree's top folder, its index and its object folder (absolute), in one git call. */
async function repoPaths(host: Host, repo: string): Promise<{ top: string; index: string; objects: string }> {
  const result = await host.run('git', ['-C', repo, 'rev-parse', '--path-format=absolute', '--show-toplevel', '--git-path', 'index', '--git-path', 'objects'], { readOnly: true });
  const [top, index, objects] = result.stdout.split('\n');
  if (result.exitCode !== 0 || !top || !index || !objects) throw new ActionError(`${repo} is not a git work tree: ${result.stderr.trim()}`);
  return { top, index, objects };
}

async function topLevel(host: Host, repo: string): Promise<string> {
  const result = await host.run('git', ['-C', repo, 'rev-parse', '--show-toplevel'], { readOnly: true });
  if (result.exitCode !== 0) throw new ActionError(`${repo} is not a git work tree: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** HEAD's commit, or null when HEAD is unborn (a repo with no commit yet). */
export async function headCommit(host: Host, repo: string): Promise<string | null> {
  const result = await host.run('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { readOnly: true });
  if (result.exitCode === 0) return result.stdout.trim();
  if (result.exitCode === 1) return null;
  throw new ActionError(`git rev-parse HEAD in ${repo} failed: ${result.stderr.trim()}`);
}

async function emptyTree(host: Host, repo: string): Promise<string> {
  // The empty tree's id depends on the object format (sha1 or sha256); git knows it without storing it.
  return (await git(host, ['-C', repo, 'hash-object', '-t', 'tree', '--stdin'], { input: '', readOnly: true })).stdout.trim();
}

/** `<seconds> <zone>` of a raw commit's committer line (the parent's date makes the snapshot's sha stable). */
function committerDate(rawCommit: string): string {
  const line = rawCommit.split('\n').find((l) => l.startsWith('committer '));
  const match = line ? / (\d+ [+-]\d{4})$/.exec(line) : null;
  return match?.[1] ?? UNBORN_DATE;
}

/** Paths that differ between two trees, as `git diff-tree --name-status` counts them. */
export interface WorktreeChanges {
  modified: number;
  added: number;
  deleted: number;
  /** What they differ from: the saved snapshot (its objects are in the repo), or HEAD. */
  against: 'snapshot' | 'HEAD';
}

/**
 * The paths git named on stderr as unreadable while adding (LC_ALL=C): `unable to index file 'p'`
 * (a file it may not open, or one that vanished meanwhile), `could not open directory 'd/'` (its
 * untracked files are not seen), `p: Permission denied` (a tracked file it may not even stat: its
 * staged content is kept).
 */
export function unreadablePaths(stderr: string): string[] {
  const paths = new Set<string>();
  for (const line of stderr.split('\n')) {
    const match =
      /^error: unable to index file '(.+)'$/.exec(line) ??
      /^warning: could not open directory '(.+)': /.exec(line) ??
      /^(?!error: |warning: |fatal: )(.+): (?:Permission denied|No such file or directory)$/.exec(line);
    if (match?.[1]) paths.add(match[1]);
  }
  return [...paths];
}

/**
 * The paths git stopped reading part-way (`error: short read while indexing p`: the file shrank
 * between git's stat and its read, the agent rewriting it). git leaves them as they were staged and
 * names them again as unable to index.
 */
export function shortReadPaths(stderr: string): string[] {
  return [...stderr.matchAll(/^error: short read while indexing (.+)$/gm)].map((match) => match[1]!);
}

/** Files changed lately whose writers a read looks at; more than this wait for quiet instead (as a push's look budget). */
const LOOKS_PER_READ = 100;
/** A file changed lately is read whole into memory up to this size; a larger one leaves the snapshot unsaved (the next tries again). */
const WHOLE_READ_LIMIT = 256 * 1024 * 1024;

/** The files whose content in `tree` differs from HEAD's and that changed within RECENT_MS: absolute path, and mode and blob id in `tree`. */
async function recentlyChanged(host: Host, top: string, head: string | null, tree: string, run: GitRun): Promise<{ path: string; mode: string; blob: string }[]> {
  const base = head ? `${head}^{tree}` : await emptyTree(host, top);
  const fields = splitNul((await run(['-C', top, 'diff-tree', '-r', '--no-renames', '-z', base, tree])).stdout);
  const changed: { path: string; mode: string; blob: string }[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [, mode, , blob, status] = fields[i]!.split(' ');
    if (status !== 'D' && mode && blob && /^100(644|755)$/.test(mode)) changed.push({ path: join(top, fields[i + 1]!), mode, blob });
  }
  const now = host.now().getTime();
  const infos = await Promise.all(changed.map((file) => host.lstat(file.path)));
  return changed.filter((_, i) => infos[i]?.type === 'file' && isRecent(infos[i]!, now));
}

/** The git blob id of `data` (sha1, or sha256 for a repo whose ids are 64 hex digits). */
export function blobIdOf(data: Buffer, idLength: number): string {
  return createHash(idLength === 64 ? 'sha256' : 'sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

/**
 * `torn` (relative paths git stopped reading part-way), with the mode git would give each: its
 * staged mode, else (a new file) its executable bit, as `git add` does. A blob id of '' stands for
 * "whatever is staged is not what the file holds".
 */
async function tornFiles(host: Host, top: string, torn: readonly string[], run: GitRun): Promise<{ path: string; mode: string; blob: string }[]> {
  if (torn.length === 0) return [];
  const staged = new Map<string, string>();
  const listed = await run(['-C', top, 'ls-files', '-s', '-z', '--', ...torn.map((path) => `:(literal)${path}`)]);
  for (const entry of splitNul(listed.stdout)) {
    const match = /^(\d+) [0-9a-f]+ \d\t(.*)$/s.exec(entry);
    if (match) staged.set(match[2]!, match[1]!);
  }
  const infos = await Promise.all(torn.map((path) => host.lstat(join(top, path))));
  return torn.map((path, i) => ({ path: join(top, path), mode: staged.get(path) ?? ((infos[i]?.mode ?? 0) & 0o111 ? '100755' : '100644'), blob: '' }));
}

/**
 * The index entries (`mode blob\tpath`, or mode 0 for "not in the snapshot") that give `paths`
 * (relative) their last saved version: the one in the repo's own snapshot ref (what this machine
 * saved or restored) while the file's committed version has not moved since that snapshot was made,
 * else HEAD's (the agent committed it since: that is newer), else none (a new file never saved).
 */
async function lastSavedEntries(top: string, head: string | null, paths: readonly string[], idLength: number, run: GitRun): Promise<string[]> {
  const entriesOf = async (treeish: string | null): Promise<Map<string, string>> => {
    const entries = new Map<string, string>();
    if (!treeish) return entries;
    const listed = await run(['--literal-pathspecs', '-C', top, 'ls-tree', '-r', '-z', '--full-tree', treeish, '--', ...paths]);
    for (const line of splitNul(listed.stdout)) {
      const match = /^(\d+) blob ([0-9a-f]+)\t(.*)$/s.exec(line);
      if (match) entries.set(match[3]!, `${match[1]} ${match[2]}`);
    }
    return entries;
  };
  const savedRef = await run(['-C', top, 'rev-parse', '--verify', '--quiet', `${WORKTREE_REF}^{commit}`], [0, 1]);
  const saved = savedRef.exitCode === 0 ? savedRef.stdout.trim() : null;
  const parent = saved ? await run(['-C', top, 'rev-parse', '--verify', '--quiet', `${saved}^1`], [0, 1]) : null;
  const [atHead, inSaved, underSaved] = await Promise.all([entriesOf(head), entriesOf(saved), entriesOf(parent?.exitCode === 0 ? parent.stdout.trim() : null)]);
  return paths.map((path) => {
    const entry = saved && underSaved.get(path) === atHead.get(path) ? inSaved.get(path) : atHead.get(path);
    return entry ? `${entry}\t${path}` : `0 ${'0'.repeat(idLength)}\t${path}`;
  });
}

type GitRun = (args: string[], okExitCodes?: number[], input?: string | Buffer) => Promise<Awaited<ReturnType<typeof git>>>;

/**
 * Each file of `tree` (a saved snapshot's, in the scratch index) that changed lately, and each file
 * git stopped reading part-way (`torn`), read whole (readWhole): where `tree` holds other bytes than
 * that read (git read it in the middle of a write, or before the last one), the read goes into the
 * index instead (`hash-object --path`, so that the repo's filters apply), and the tree is written
 * again; a file gone meanwhile leaves it. A file that never reads whole (the agent rewrites it
 * without pause) gets its last saved version (lastSavedEntries) and is named in `unsettled`, so
 * that it does not keep the rest of the repo out of the store. `recentToo: false` (plan's
 * throwaway snapshot, which only compares): the torn files alone.
 */
async function settleRecent(
  host: Host,
  top: string,
  head: string | null,
  tree: string,
  torn: readonly string[],
  recentToo: boolean,
  run: GitRun,
): Promise<{ tree: string; unsettled: string[] }> {
  const changed = recentToo ? await recentlyChanged(host, top, head, tree, run) : [];
  const forced = await tornFiles(host, top, torn, run);
  const recent = [...forced, ...changed.filter((file) => !forced.some((other) => other.path === file.path))];
  // A look reads every process's fd table: past LOOKS_PER_READ files, the quiet rule alone.
  // Looked at however long ago a file changed: a writer blocked inside its update leaves no recent stamp.
  const look = recent.length <= LOOKS_PER_READ ? (path: string) => host.writersOf(path) : async () => ({ writers: [], complete: false });
  const idLength = tree.length; // 40 (sha1) or 64 (sha256)
  const entries: string[] = [];
  const unsettled: string[] = [];
  for (const { path, mode, blob } of recent) {
    const name = relative(top, path);
    // A torn file had content when git looked at it (it read fewer bytes than its size).
    const whole = await readWhole(host, path, { maxBytes: WHOLE_READ_LIMIT, look: () => look(path), hadContent: blob === '' || blob !== blobIdOf(Buffer.alloc(0), blob.length) });
    if (whole === 'unsettled' || whole === 'too large') unsettled.push(name);
    else if (whole === 'gone') entries.push(`0 ${'0'.repeat(idLength)}\t${name}`);
    else if (blob === '' || blobIdOf(whole.data, blob.length) !== blob) {
      const stored = (await run(['-C', top, 'hash-object', '-w', '--stdin', `--path=${name}`], [0], whole.data)).stdout.trim();
      if (stored !== blob) entries.push(`${mode} ${stored}\t${name}`);
    }
  }
  if (unsettled.length > 0) entries.push(...(await lastSavedEntries(top, head, unsettled, idLength, run)));
  if (entries.length === 0) return { tree, unsettled };
  await run(['-C', top, 'update-index', '-z', '--index-info'], [0], entries.map((entry) => `${entry}\0`).join(''));
  return { tree: (await run(['-C', top, 'write-tree'])).stdout.trim(), unsettled };
}

const IGNORED_HEADER = 'The following paths are ignored by one of your .gitignore files:';

/**
 * Whether `git add` (LC_ALL=C) complained only that paths it was told to leave out are ignored: git
 * (2.39 at least) lists an ignored path (or ignored folder above it) that an exclude pathspec spells
 * out, and exits 1, although it added everything else. Such a path is neither added nor wanted: the
 * snapshot is complete. Warnings and hints around the list are fine; an error is not.
 */
function onlyIgnoredLeftOut(stderr: string, leaveOut: readonly string[]): boolean {
  const lines = stderr.split('\n').filter((line) => line !== '');
  const start = lines.indexOf(IGNORED_HEADER);
  if (start < 0) return false;
  let end = start + 1;
  while (end < lines.length && !/^(hint|warning|error|fatal): /.test(lines[end]!)) end++;
  const listed = lines.slice(start + 1, end);
  const others = [...lines.slice(0, start), ...lines.slice(end)];
  return listed.length > 0 && listed.every((path) => leaveOut.some((left) => left === path || left.startsWith(`${path}/`))) && others.every((line) => /^(hint|warning): /.test(line));
}

/**
 * Build the snapshot commit of the work tree of `repo` (see the top of this file). The commit has
 * HEAD (or `head`) as parent (none when unborn), a fixed identity and its committer date, so the same work
 * tree on the same HEAD always gives the same sha. With `objects: 'temporary'` every git call is
 * marked read-only (it writes only into persist's scratch folder), so plan can run it on its
 * read-only host. `saved`: the saved snapshot's sha (null: none); when the new snapshot differs
 * from it, `changes` says how (against the saved snapshot when its objects are in the repo, else
 * against HEAD).
 */
export async function snapshotWorktree(host: Host, repo: string, options: SnapshotWorktreeOptions = {}): Promise<WorktreeSnapshot> {
  const temporary = options.objects === 'temporary';
  // Independent look-ups run side by side (each git process costs a few ms, more on a busy machine).
  const lookups = Promise.all([repoPaths(host, repo), options.head ?? headCommit(host, repo)]);
  lookups.catch(() => {}); // awaited below; this only keeps a failure meanwhile from going unhandled
  return withScratchDir(host, `persist-worktree-${host.pid()}-`, async (temp) => {
    const [{ top, index: realIndex, objects: repoObjects }, head] = await lookups;
    const index = join(temp, 'index');
    const env: Record<string, string | undefined> = { ...host.env(), GIT_INDEX_FILE: index };
    delete env.GIT_DIR; // run against `top`, not a GIT_DIR the caller's process may have set
    delete env.GIT_WORK_TREE;
    if (temporary) {
      // The scratch folder itself holds the new objects (git makes the fan-out folders in it).
      env.GIT_OBJECT_DIRECTORY = temp;
      env.GIT_ALTERNATE_OBJECT_DIRECTORIES = repoObjects;
    }
    const run = (args: string[]) => git(host, ['-C', top, ...args], { env, timeoutMs: options.timeoutMs, readOnly: temporary });
    // HEAD's raw commit gives both its tree and the committer date the snapshot reuses.
    const headCommitText = head ? run(['cat-file', 'commit', head]) : null;
    headCommitText?.catch(() => {});

    // Seed from the real index (its stat data makes `add -A` rehash only what changed); without one, from HEAD.
    if (await host.lstat(realIndex)) await copyIntoScratch(host, realIndex, index);
    else if (head) await run(['read-tree', head]);
    const leaveOut = options.leaveOut ?? [];
    // --ignore-errors: a file git cannot read is left out (and named), not the end of the snapshot.
    const added = await git(host, ['-C', top, '-c', 'advice.addIgnoredFile=false', 'add', '-A', '--ignore-errors', '--', ...snapshotPathspecs(leaveOut)], {
      env: { ...env, LC_ALL: 'C', LANGUAGE: undefined },
      timeoutMs: options.timeoutMs,
      readOnly: temporary,
      okExitCodes: [0, 1, 128],
    });
    const torn = shortReadPaths(added.stderr);
    const skipped = unreadablePaths(added.stderr).filter((path) => !torn.includes(path));
    if (added.exitCode !== 0 && skipped.length === 0 && torn.length === 0 && !onlyIgnoredLeftOut(added.stderr, leaveOut)) throw new ActionError(`git add -A in ${top} failed (exit ${added.exitCode}): ${added.stderr.trim()}`);
    const readTree = (await run(['write-tree'])).stdout.trim();
    // A file the agent rewrites while git reads it can be read half-written (emptied by its
    // truncate, or a short read git stops on, leaving the file as staged). Each file git stopped
    // on, and in a saved snapshot each file the read found changed lately, is read once more, whole
    // (host/quiet.ts, readWhole: the rule of a sync's push); where git stored other bytes, the whole
    // read takes their place. One that never reads whole keeps its last saved version and is named
    // (settleRecent): the rest of the repo is saved all the same.
    const gitRun: GitRun = (args, okExitCodes, input) => git(host, args, { env, timeoutMs: options.timeoutMs, readOnly: temporary, ...(okExitCodes ? { okExitCodes } : {}), ...(input === undefined ? {} : { input }) });
    const { tree, unsettled } = await settleRecent(host, top, head, readTree, torn, !temporary, gitRun);

    const raw = headCommitText ? (await headCommitText).stdout : null;
    const headTree = raw ? (/^tree ([0-9a-f]+)$/m.exec(raw)?.[1] ?? '') : await emptyTree(host, top);
    const date = raw ? committerDate(raw) : UNBORN_DATE;
    const commitEnv = { ...env, ...identityEnv(date) };
    const commitArgs = ['-C', top, '-c', 'commit.gpgSign=false', 'commit-tree', '--no-gpg-sign', tree, ...(head ? ['-p', head] : [])];
    const sha = (await git(host, commitArgs, { env: commitEnv, input: SNAPSHOT_MESSAGE, timeoutMs: options.timeoutMs, readOnly: temporary })).stdout.trim();

    let changes: WorktreeChanges | undefined;
    if (options.saved !== undefined && sha !== options.saved) {
      const savedTree = options.saved
        ? await host.run('git', ['-C', top, 'rev-parse', '--verify', '--quiet', `${options.saved}^{tree}`], { env, readOnly: true })
        : null;
      const against = savedTree?.exitCode === 0 ? 'snapshot' : 'HEAD';
      const base = savedTree?.exitCode === 0 ? savedTree.stdout.trim() : headTree;
      const listed = splitNul((await run(['diff-tree', '-r', '--no-renames', '-z', '--name-status', base, tree])).stdout);
      changes = { modified: 0, added: 0, deleted: 0, against };
      for (let i = 0; i < listed.length; i += 2) {
        const status = listed[i]![0];
        if (status === 'A') changes.added++;
        else if (status === 'D') changes.deleted++;
        else changes.modified++;
      }
    }
    return { sha, tree, head, clean: tree === headTree, ...(changes ? { changes } : {}), skipped, unsettled };
  });
}

/**
 * The snapshot `sha` (its objects in the repo) as snapshotWorktree describes one; null: the work
 * tree as committed (HEAD). Its `head` is the snapshot's parent, which is HEAD only when it was
 * made on HEAD. For recording a restored work tree (worktree-record.ts).
 */
export async function describeSnapshot(host: Host, repo: string, sha: string | null): Promise<WorktreeSnapshot> {
  const run = async (args: string[]) => (await git(host, ['-C', repo, 'rev-parse', ...args], { env: repoEnv(host), readOnly: true })).stdout.trim().split('\n');
  if (sha === null) {
    const [head, tree] = await run(['HEAD^{commit}', 'HEAD^{tree}']);
    return { sha: head!, tree: tree!, head: head!, clean: true, skipped: [], unsettled: [] };
  }
  const [tree, parent, headTree] = await run([`${sha}^{tree}`, `${sha}^1`, 'HEAD^{tree}']);
  return { sha, tree: tree!, head: parent!, clean: tree === headTree, skipped: [], unsettled: [] };
}

/** git's environment for reading `repo` itself: a GIT_DIR or GIT_WORK_TREE of the caller's process would point it elsewhere. */
export function repoEnv(host: Host): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...host.env() };
  delete env.GIT_DIR;
  delete env.GIT_WORK_TREE;
  delete env.GIT_INDEX_FILE;
  return env;
}

/**
 * `git status` of everything a snapshot saves (NUL-separated porcelain v1, untracked files one by
 * one, `.persist-backups/` and `leaveOut` left out, as in the snapshot), and the paths it could not
 * read. Read-only: `--no-optional-locks` keeps status from refreshing the repo's index.
 */
export async function worktreeStatus(host: Host, repo: string, leaveOut: readonly string[] = []): Promise<{ status: string; skipped: string[] }> {
  const args = ['--no-optional-locks', '-C', repo, 'status', '--porcelain=v1', '-z', '--untracked-files=all', '--ignore-submodules=dirty', '--', ...snapshotPathspecs(leaveOut)];
  const result = await git(host, args, { env: { ...repoEnv(host), LC_ALL: 'C', LANGUAGE: undefined }, readOnly: true });
  return { status: result.stdout, skipped: unreadablePaths(result.stderr) };
}

/** The paths a `worktreeStatus` output lists (a rename or copy names both of its paths); with `code`, only those with that status. */
export function statusPaths(status: string, code?: string): string[] {
  const fields = status.split('\0');
  const paths = new Set<string>();
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.length < 4) continue;
    const xy = field.slice(0, 2);
    if (code === undefined || xy === code) paths.add(field.slice(3));
    if (/[RC]/.test(xy) && fields[i + 1]) {
      i++;
      if (code === undefined) paths.add(fields[i]!);
    }
  }
  return [...paths];
}

export type WorktreeObserved =
  /** The work tree matches HEAD: no snapshot is saved. `skipped`: paths git could not read. */
  | { state: 'clean'; skipped?: string[] }
  /** `sha`: the snapshot the work tree makes now; `changes`: how it differs from the saved one (when it does). */
  | { state: 'dirty'; sha: string; changes?: WorktreeChanges; skipped?: string[] }
  | { state: 'unreadable'; error: string };

/**
 * Append `pattern` to the repo's `info/exclude` unless a line already says exactly that; returns
 * whether it was added. The one write into `.git` besides objects and persist's ref.
 */
export async function ensureExcluded(host: Host, repo: string, pattern: string = PERSIST_BACKUPS_PATTERN): Promise<boolean> {
  if (pattern.includes('\n') || pattern.trim() === '') throw new ActionError(`not an exclude pattern: ${JSON.stringify(pattern)}`);
  const file = await gitPath(host, repo, 'info/exclude');
  const existing = (await host.lstat(file)) ? (await host.readFile(file)).toString('utf8') : '';
  if (existing.split('\n').some((line) => line.replace(/\r$/, '') === pattern)) return false;
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
  await host.mkdir(join(file, '..'));
  await host.writeFileAtomic(file, `${existing}${separator}# persist: its backups are never part of the repo\n${pattern}\n`);
  return true;
}

/** The sha `refs/persist/worktree` points at, or null. */
export async function readWorktreeRef(host: Host, repo: string): Promise<string | null> {
  const result = await host.run('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', `${WORKTREE_REF}^{commit}`], { readOnly: true });
  return result.exitCode === 0 ? result.stdout.trim() : null;
}

/**
 * Point `refs/persist/worktree` at `sha` (null: delete it). The bundle writer then includes it by
 * name (`WORKTREE_REF` as one more revision argument of `git bundle create`). No reflog is made.
 */
export async function updateWorktreeRef(host: Host, repo: string, sha: string | null): Promise<void> {
  const base = ['-C', repo, '-c', 'core.logAllRefUpdates=false', 'update-ref', '-m', 'persist: worktree snapshot'];
  if (sha === null) {
    await git(host, [...base, '-d', WORKTREE_REF], { okExitCodes: [0] });
    return;
  }
  await git(host, [...base, WORKTREE_REF, sha]);
}

export interface RestoreWorktreeResult {
  /** Whether anything beyond HEAD was brought back. */
  changed: boolean;
}

/**
 * Bring the snapshot `sha`'s files into the work tree of `repo`, whose HEAD is checked out (a
 * fresh restore): files changed or added since HEAD are written, files deleted at snapshot time are
 * deleted. The real index stays HEAD's, so `git status` shows the changes as unstaged and the new
 * files as untracked, as they were. Done by a two-tree `git read-tree -m -u HEAD <sha>` on a copy of
 * the index: git itself refuses to overwrite a local change or an untracked file (nothing is lost)
 * and removes folders that become empty. The snapshot's parent must be HEAD.
 */
export async function restoreWorktree(host: Host, repo: string, sha: string, options: { timeoutMs?: number } = {}): Promise<RestoreWorktreeResult> {
  const top = await topLevel(host, repo);
  const head = await headCommit(host, top);
  const parents = (await git(host, ['-C', top, 'rev-list', '--parents', '-n', '1', sha], { readOnly: true })).stdout.trim().split(' ').slice(1);
  if ((head === null && parents.length !== 0) || (head !== null && (parents.length !== 1 || parents[0] !== head))) {
    throw new ActionError(
      `the work tree snapshot ${sha} of ${top} was made on ${parents[0] ?? 'no commit'}, but HEAD is ${head ?? 'unborn'}; its files were not restored`,
    );
  }
  const base = head ?? (await emptyTree(host, top));
  const tree = (await git(host, ['-C', top, 'rev-parse', `${sha}^{tree}`], { readOnly: true })).stdout.trim();
  const baseTree = head ? (await git(host, ['-C', top, 'rev-parse', `${head}^{tree}`], { readOnly: true })).stdout.trim() : base;
  if (tree === baseTree) return { changed: false };

  const realIndex = await gitPath(host, top, 'index');
  const temp = tempRoot(host);
  await host.mkdir(temp, { mode: 0o700 });
  try {
    const index = join(temp, 'index');
    const env: Record<string, string | undefined> = { ...host.env(), GIT_INDEX_FILE: index };
    delete env.GIT_DIR;
    delete env.GIT_WORK_TREE;
    if (await host.lstat(realIndex)) await host.copyFile(realIndex, index);
    else if (head) await git(host, ['-C', top, 'read-tree', head], { env });
    await git(host, ['-C', top, 'update-index', '-q', '--refresh'], { env, okExitCodes: [0, 1], timeoutMs: options.timeoutMs });
    await git(host, ['-C', top, 'read-tree', '-m', '-u', base, sha], { env, timeoutMs: options.timeoutMs });
    return { changed: true };
  } finally {
    await host.remove(temp);
  }
}

/**
 * Put stash entries back (newest first, as `refs/persist/stash/<n>` lists them) so that
 * `git stash list` shows them again: `git stash store` of each, oldest first, with its commit's
 * subject as the message (what `git stash` wrote into the reflog when the entry was made).
 */
export async function restoreStash(host: Host, repo: string, entries: string[]): Promise<void> {
  const env = { ...host.env(), ...identityEnv(`${Math.floor(host.now().getTime() / 1000)} +0000`) };
  for (const sha of [...entries].reverse()) {
    const subject = (await git(host, ['-C', repo, 'log', '-1', '--format=%s', sha], { readOnly: true })).stdout.trim();
    await git(host, ['-C', repo, 'stash', 'store', '-q', '-m', subject || 'persist: restored stash entry', sha], { env });
  }
}
