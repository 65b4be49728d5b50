// Restores a repository from a bundle without clobbering anything already in its folder (links
// made earlier, files the agent wrote). Crash-safe: when the repo has no `.git`, the git directory
// is built beside it and renamed into place last, so an interrupted restore leaves no half-made
// repository, only checked-out files that the next restore finds equal. In an existing `.git`
// without commits, the refs are written last for the same reason.
//
// A restore over a repo that has commits (lineage decided it: a repo this machine never saved, or
// a rollback) first keeps that repo aside (keepRepoAside): its uncommitted work saved as a
// snapshot commit in its own `.git`, then `.git` and every file git sees in the work tree (tracked,
// and untracked but not ignored) moved into the backups, keeping their paths. Ignored files, the
// folders of other resources (links, syncs, files, nested bundles) and the backups stay where
// they are. `.git` moves first, so a kill half-way leaves a repo without `.git`, which the next
// apply restores (keeping the files still there); everything that was moved is in the backup.
import { basename, dirname, join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import { moveExactly, newAsideFolder } from '../../lineage/aside.js';
import { backupDir, stateDir } from '../../host/paths.js';
import { buildingPath, markBuilding } from '../../host/state-leftovers.js';
import { SHALLOW_REF_PREFIX, findGitDir, isBundledRef } from './refs.js';
import { git, splitNul } from './git.js';
import { ensureExcluded, readWorktreeRef } from './worktree.js';
import { saveWorktree } from './saved-work.js';

export interface RestoreRequest {
  repo: string;
  /** Absolute path of the bundle in the mount. */
  file: string;
  objectFormat: 'sha1' | 'sha256';
  /** Set as `origin` when given. */
  remote?: string;
  /**
   * The existing git directory of a repo without commits, restored in place; null when the
   * repo has no `.git` (built beside it, then moved in).
   */
  existingGitDir: string | null;
}

export interface RestoreResult {
  refs: number;
  /** `refs/heads/main`, or null when HEAD is detached. */
  headRef: string | null;
  headSha: string | null;
  checkedOut: number;
  /** Tracked files already present whose content differs from the bundle: kept as they are. */
  differing: string[];
  /** Missing tracked files not checked out because a symlink (or a file) lies on their path. */
  blocked: string[];
  /** The bundle's `refs/persist/*` refs (stash entries, work tree snapshot): their objects are in the repo now, the refs are not. */
  persistRefs: Record<string, string>;
  /** Commits of a shallow history whose parents the bundle lacks although it does not list them as its boundary (written before persist did). */
  unrecordedBoundary: string[];
}

/** The branch HEAD should name: the one at HEAD's commit, preferring main and master when several are. */
export function chooseHeadBranch(refs: Record<string, string>, headSha: string | null): string | null {
  const branches = Object.keys(refs).filter((name) => name.startsWith('refs/heads/')).sort();
  const candidates = headSha ? branches.filter((name) => refs[name] === headSha) : branches;
  for (const preferred of ['refs/heads/main', 'refs/heads/master']) if (candidates.includes(preferred)) return preferred;
  return candidates[0] ?? null;
}

/** `<sha> <ref>` lines as printed by `git bundle unbundle` and `list-heads`. */
function parseRefLines(output: string): Record<string, string> {
  const refs: Record<string, string> = {};
  for (const line of output.split('\n')) {
    const match = /^([0-9a-f]{40,64}) (\S+)$/.exec(line.trim());
    if (match?.[1] && match[2]) refs[match[2]] = match[1];
  }
  return refs;
}

/** Where a repo goes (the backups), and the local paths inside it that stay (other resources' folders). */
export interface AsideRequest {
  repo: string;
  workspace: string;
  address: string;
  /** Absolute paths that are never moved (nor anything under them). */
  spare: string[];
  /** persist's links inside the repo (relative paths): left out of its snapshot, as of every snapshot (worktree.ts). */
  links: string[];
}

/** Keep the repo aside (see the top of this file); returns where it went, or null when it has no `.git`. */
export async function keepRepoAside(host: Host, request: AsideRequest, progress: (message: string) => void): Promise<string | null> {
  const { repo } = request;
  const gitDir = await findGitDir(host, repo);
  if (!gitDir) return null;
  if ((await host.lstat(join(repo, '.git')))?.type !== 'dir') {
    throw new ActionError(`${repo}/.git is not a folder (a linked worktree or submodule): persist does not move such a repo aside; move ${repo} aside yourself, then apply again`);
  }
  progress('keeping the local repo aside');
  await ensureExcluded(host, repo);
  const head = await host.run('git', ['-C', repo, 'rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { readOnly: true });
  if (head.exitCode === 0) await saveWorktree(host, repo, await readWorktreeRef(host, repo), request.links, head.stdout.trim());
  const listed = [
    ...splitNul((await git(host, ['-C', repo, 'ls-files', '-z', '--cached'], { readOnly: true })).stdout),
    ...splitNul((await git(host, ['-C', repo, 'ls-files', '-z', '--others', '--exclude-standard'], { readOnly: true })).stdout),
  ].map((path) => path.replace(/\/$/, ''));
  const spare = [...request.spare, backupDir(request.workspace)];
  const kept = (path: string) => spare.some((other) => other === path || other.startsWith(`${path}/`) || path.startsWith(`${other}/`));
  const paths = [...new Set(listed)].filter((path) => !kept(join(repo, path)));
  // Never through a symlink: a tracked path under a linked folder is not the repo's to move.
  const blocked = await blockedPaths(host, repo, paths);

  const target = await newAsideFolder(host, request.workspace, request.address, repo);
  await moveExactly(host, join(repo, '.git'), join(target, '.git'));
  const emptied = new Set<string>();
  for (const path of paths) {
    if (blocked.has(path) || !(await host.lstat(join(repo, path)))) continue;
    await moveExactly(host, join(repo, path), join(target, path));
    for (let dir = dirname(path); dir !== '.'; dir = dirname(dir)) emptied.add(dir);
  }
  // Folders left empty by the moves go too (git keeps no empty folder; the restore makes what it needs).
  for (const dir of [...emptied].sort((a, b) => b.split('/').length - a.split('/').length)) {
    const info = await host.lstat(join(repo, dir));
    if (info?.type === 'dir' && (await host.readdir(join(repo, dir))).length === 0) await host.remove(join(repo, dir));
  }
  return target;
}

/** Paths (relative to `root`) with a symlink or non-directory as one of their parent components. */
async function blockedPaths(host: Host, root: string, paths: string[]): Promise<Set<string>> {
  const parentOk = new Map<string, boolean>();
  const isOpenDir = async (relative: string): Promise<boolean> => {
    let known = parentOk.get(relative);
    if (known === undefined) {
      const info = await host.lstat(join(root, relative));
      const parent = dirname(relative);
      known = (info === null || info.type === 'dir') && (parent === '.' || (await isOpenDir(parent)));
      parentOk.set(relative, known);
    }
    return known;
  };
  const blocked = new Set<string>();
  for (const path of paths) {
    const parent = dirname(path);
    if (parent !== '.' && !(await isOpenDir(parent))) blocked.add(path);
  }
  return blocked;
}

/** Walks of the history that may each find one more boundary commit of a bundle written without them. */
const MAX_BOUNDARY_WALKS = 64;

/**
 * Write the shallow boundary the bundle records (`refs/persist/shallow/*`) into the new git
 * directory, then walk the history of every tip once (`rev-list`, commits only): a bundle of a
 * shallow repo written before persist recorded its boundary holds commits whose parents it lacks,
 * and git names each such commit ("Failed to traverse parents of commit <id>"); it joins the
 * boundary and the walk runs again. The restored repo then reads its history, and its next save
 * records the boundary. Returns the boundary commits found that way (none when it was recorded).
 */
async function writeShallowBoundary(host: Host, gitDir: string, recorded: string[], tips: string[], progress: (message: string) => void): Promise<string[]> {
  const found: string[] = [];
  if (tips.length === 0) return found;
  const shallowFile = (await git(host, ['--git-dir', gitDir, 'rev-parse', '--path-format=absolute', '--git-path', 'shallow'])).stdout.trim();
  const had = (await host.lstat(shallowFile)) ? (await host.readFile(shallowFile)).toString('utf8').split('\n').filter((line) => line.trim() !== '') : [];
  const boundary = new Set([...had, ...recorded]);
  const write = async () => host.writeFile(shallowFile, `${[...boundary].sort().join('\n')}\n`);
  if (recorded.length) {
    progress('writing the shallow boundary');
    await write();
  }
  for (let walk = 0; ; walk++) {
    const walked = await host.run('git', ['--git-dir', gitDir, 'rev-list', '--quiet', ...tips, '--'], { env: { ...host.env(), LC_ALL: 'C', LANGUAGE: undefined } });
    if (walked.exitCode === 0) return found;
    const child = /Failed to traverse parents of commit ([0-9a-f]{40,64})/.exec(walked.stderr)?.[1];
    if (!child || boundary.has(child) || walk >= MAX_BOUNDARY_WALKS) {
      throw new ActionError(`the history in the bundle is incomplete and could not be read as a shallow one: git rev-list failed (exit ${walked.exitCode}): ${walked.stderr.trim().split('\n').slice(0, 3).join(' ')}`);
    }
    progress('the bundle holds a shallow history: writing its boundary');
    boundary.add(child);
    found.push(child);
    await write();
  }
}

export async function restoreFromBundle(host: Host, request: RestoreRequest, progress: (message: string) => void): Promise<RestoreResult> {
  const { repo, file } = request;
  // A fresh repo is built beside its folder; a run killed meanwhile leaves it named in a marker,
  // which the next run holding the apply lock removes (host/state-leftovers.ts).
  const staging = buildingPath(host, join(dirname(repo), `.${basename(repo)}`), 'restore');
  const building = request.existingGitDir === null;
  let unmark: (() => Promise<void>) | null = null;
  try {
    let gitDir: string;
    if (building) {
      if (await host.lstat(join(repo, '.git'))) throw new ActionError(`${repo}/.git appeared during the restore; run persist plan again`);
      await host.mkdir(repo);
      unmark = await markBuilding(host, stateDir(host.env()), [staging]);
      await git(host, ['init', '-q', `--object-format=${request.objectFormat}`, staging]);
      gitDir = join(staging, '.git');
    } else {
      gitDir = request.existingGitDir!;
    }
    const inRepo = ['--git-dir', gitDir, '--work-tree', repo];

    progress('reading the bundle');
    const unbundled = parseRefLines((await git(host, ['--git-dir', gitDir, 'bundle', 'unbundle', file])).stdout);
    const refs = Object.fromEntries(Object.entries(unbundled).filter(([name]) => isBundledRef(name)));
    const persistRefs = Object.fromEntries(Object.entries(unbundled).filter(([name]) => name.startsWith('refs/persist/')));
    const headSha = unbundled.HEAD ?? null;
    const headRef = chooseHeadBranch(refs, headSha);
    // A bundle of a shallow repo: its boundary commits come without their parents, and git walks
    // no history (log, rev-list, the next bundle) until .git/shallow names them.
    const boundary = Object.entries(persistRefs).filter(([name]) => name.startsWith(SHALLOW_REF_PREFIX)).map(([, sha]) => sha);
    const tips = [...new Set(Object.values(unbundled))];
    const unrecordedBoundary = await writeShallowBoundary(host, gitDir, boundary, tips, progress);
    const checkoutSha = headSha ?? (headRef ? refs[headRef]! : null);

    let checkedOut = 0;
    let differing: string[] = [];
    let blocked: string[] = [];
    if (checkoutSha) {
      progress('checking out missing files');
      await git(host, [...inRepo, 'read-tree', checkoutSha]);
      await git(host, [...inRepo, 'update-index', '-q', '--refresh'], { okExitCodes: [0, 1] });
      const missing = splitNul((await git(host, [...inRepo, 'ls-files', '-z', '--deleted'])).stdout);
      const blockedSet = await blockedPaths(host, repo, missing);
      blocked = missing.filter((path) => blockedSet.has(path));
      const toCheckOut = missing.filter((path) => !blockedSet.has(path));
      if (toCheckOut.length > 0) {
        // Without -f, checkout-index never overwrites a file that exists.
        await git(host, [...inRepo, 'checkout-index', '-q', '-u', '-z', '--stdin'], { input: toCheckOut.map((p) => `${p}\0`).join('') });
      }
      checkedOut = toCheckOut.length;
      differing = splitNul((await git(host, [...inRepo, 'diff', '--name-only', '-z', '--diff-filter=MT'])).stdout);
    }

    if (request.remote) {
      const existing = await git(host, ['--git-dir', gitDir, 'config', '--get', 'remote.origin.url'], { okExitCodes: [0, 1] });
      const verb = existing.exitCode === 0 ? 'set-url' : 'add';
      await git(host, ['--git-dir', gitDir, 'remote', verb, 'origin', request.remote], { describe: `git remote ${verb} origin <remote>` });
    }

    progress('writing refs');
    const updates = Object.entries(refs).map(([name, sha]) => `update ${name} ${sha}\n`).join('');
    if (updates) await git(host, ['--git-dir', gitDir, 'update-ref', '--stdin'], { input: updates });
    if (headRef) await git(host, ['--git-dir', gitDir, 'symbolic-ref', 'HEAD', headRef]);
    else if (headSha) await git(host, ['--git-dir', gitDir, 'update-ref', '--no-deref', 'HEAD', headSha]);

    if (building) {
      if (await host.lstat(join(repo, '.git'))) throw new ActionError(`${repo}/.git appeared during the restore; run persist plan again`);
      await host.rename(gitDir, join(repo, '.git'));
    }
    return { unrecordedBoundary, refs: Object.keys(refs).length, headRef, headSha: headRef ? refs[headRef]! : headSha, checkedOut, differing, blocked, persistRefs };
  } finally {
    if (building) await host.remove(staging);
    await unmark?.();
  }
}
