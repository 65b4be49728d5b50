// bundle.<name>: a local git repository saved into the mount as one `git bundle` file.
// Desired: the mounted bundle holds exactly the repo's refs (HEAD and every local ref but the
// remote-tracking ones; see isBundledRef), its stash entries and a snapshot of its uncommitted work
// (saved-work.ts). No `.git` (or no commits yet) and a bundle → restore; refs differ →
// update; equal → nothing. An update that would drop commits the bundle holds and the repo does
// not (a re-initialised or stale repo) is a conflict unless --allow-shrink.
import { join, relative } from 'node:path';
import { addressOf } from '../../engine/address.js';
import type { ApplyContext, ApplyOutcome, Change, Decision, Facts, ObserveContext, PlanOptions, ResourceModule } from '../../engine/types.js';
import { readBundleHeader } from './header.js';
import { bundleFoundDamaged, recordBundleDamage } from './verify.js';
import { keepRepoAside, restoreFromBundle } from './restore.js';
import { generationPath, writeBundle } from './update.js';
import { BundleUpdate, bundleLineageFacts, bundleLineageVerdict, currentBundleRecord, observeBundleLineage, recordBundleSeen, type BundleLineage } from './generations.js';
import { SHALLOW_REF_PREFIX, findGitDir, readRepoRefs, shallowRefs, type HeadState } from './refs.js';
import { splitNul } from './git.js';
import { isPersistRef, lostSavedWork, observeWorktree, restoreSavedWork, saveWorktree, savedWorkRefs, unreadableWork, unsettledWork, worktreeChange } from './saved-work.js';
import { WORKTREE_REF, type WorktreeObserved } from './worktree.js';
import type { Host } from '../../host/types.js';
import type { Store } from '../../store/types.js';
import { downloadToTemp } from '../../store/temp-file.js';
import type { ResolvedBundle, ResolvedEnvironment, ResolvedLink } from '../../spec/types.js';
import { formatAge, plural, samplePaths } from '../../output/format.js';

export type RepoObserved =
  | { state: 'missing' }
  | { state: 'not-dir' }
  /** A folder without `.git`; `entries` is how many names it holds. */
  | { state: 'no-git'; entries: number }
  /**
   * A git repository; no refs and an unborn HEAD means no commits yet. `stash`: its entries, newest
   * first; `worktreeRef`: the snapshot it last saved or restored; `worktree`: its work tree now
   * (null when HEAD has no commit: nothing is snapshotted then); `shallow`: the commits of a
   * shallow repo's boundary that it holds (refs.ts, SHALLOW_REF_PREFIX); `uncommitted`: in a repo
   * without commits and without a bundle, the files git would add (staged, or untracked and not
   * ignored), which no bundle holds until they are committed: how many, and the first few.
   */
  | {
      state: 'git';
      head: HeadState;
      refs: Record<string, string>;
      stash: string[];
      worktreeRef: string | null;
      worktree: WorktreeObserved | null;
      shallow?: string[];
      uncommitted?: { count: number; sample: string[] };
    }
  | { state: 'unreadable'; error: string };

export type BundleFileObserved =
  /** The mount is not ready: what it holds is unknown until the mount action has run. */
  | { state: 'unknown' }
  | { state: 'missing' }
  /** `refs` includes `HEAD` when the bundle records it. */
  | { state: 'present'; size: number; objectFormat: 'sha1' | 'sha256'; refs: Record<string, string>; prerequisites: number }
  | { state: 'unreadable'; error: string };

export interface BundleObserved {
  repo: RepoObserved;
  bundle: BundleFileObserved;
  /** Earlier generations present (`<file>.1` ...), up to `keep`. */
  generations: number[];
  /** Refs of the bundle whose commits the repo does not contain (checked only when refs differ). */
  lost: { ref: string; sha: string }[];
  /** Link paths inside the repo that the repo tracks (checked only when an update is planned). */
  trackedLinks: string[];
  /** Generations (./generations.ts). */
  lineage?: BundleLineage;
  /** `persist verify` found the stored bundle damaged, and it is still that file (verify.ts): written again from the repo. */
  damaged?: boolean;
}

const short = (sha: string | null | undefined): string | null => (sha ? sha.slice(0, 12) : null);

function hasCommits(repo: RepoObserved): repo is Extract<RepoObserved, { state: 'git' }> {
  return repo.state === 'git' && (Object.keys(repo.refs).length > 0 || repo.head.sha !== null);
}

/** The repo's side of the comparison: its bundled refs plus HEAD and its saved work, as a bundle header lists them. */
export function repoRefMap(repo: Extract<RepoObserved, { state: 'git' }>): Record<string, string> {
  const saved = savedWorkRefs(repo.stash, repo.worktree);
  const shallow = shallowRefs(repo.shallow ?? []);
  return repo.head.sha ? { HEAD: repo.head.sha, ...repo.refs, ...saved, ...shallow } : { ...repo.refs, ...saved, ...shallow };
}

function sameRefs(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/**
 * One change per ref that differs, HEAD first (the work tree snapshot has a line of its own:
 * worktreeChange), and one line for a shallow boundary that differs.
 */
export function refChanges(before: Record<string, string>, after: Record<string, string>): Change[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((name) => name !== WORKTREE_REF && !name.startsWith(SHALLOW_REF_PREFIX)).sort((a, b) => (a === 'HEAD' ? -1 : b === 'HEAD' ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const changes = names.filter((name) => before[name] !== after[name]).map((field) => ({ field, before: short(before[field]), after: short(after[field]) }));
  const boundary = (refs: Record<string, string>): string => {
    const count = Object.keys(refs).filter((name) => name.startsWith(SHALLOW_REF_PREFIX)).length;
    return count ? `shallow (${plural(count, 'boundary commit')})` : 'complete';
  };
  const shallowOf = (refs: Record<string, string>) => Object.keys(refs).filter((name) => name.startsWith(SHALLOW_REF_PREFIX)).sort().join(' ');
  if (shallowOf(before) !== shallowOf(after)) changes.push({ field: 'history', before: boundary(before), after: boundary(after) });
  return changes;
}

async function observeRepo(host: Host, repo: string): Promise<RepoObserved> {
  try {
    const info = await host.stat(repo);
    if (!info) return { state: 'missing' };
    if (info.type !== 'dir') return { state: 'not-dir' };
    const refs = await readRepoRefs(host, repo);
    if (!refs) return { state: 'no-git', entries: (await host.readdir(repo)).length };
    const shallow = refs.shallow.length ? await heldCommits(host, repo, refs.shallow) : [];
    return { state: 'git', head: refs.head, refs: refs.refs, stash: refs.stash, worktreeRef: refs.worktreeRef, worktree: null, ...(shallow.length ? { shallow } : {}) };
  } catch (error) {
    return { state: 'unreadable', error: (error as Error).message };
  }
}

/**
 * The files of a repo without commits that git would add (staged, or untracked and not ignored),
 * but for those persist keeps elsewhere (links, syncs' folders, restored files). Read-only.
 */
async function filesToCommit(host: Host, repo: string, env: ResolvedEnvironment): Promise<string[]> {
  const listed = await host.run('git', ['-C', repo, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { readOnly: true });
  if (listed.exitCode !== 0) return [];
  const elsewhere = [...linksInRepo(repo, env.links), ...pathsInRepo(repo, [...Object.values(env.syncs).map((sync) => sync.from), ...Object.values(env.files).map((file) => file.to)])];
  return splitNul(listed.stdout).filter((path) => !elsewhere.some((kept) => path === kept || path.startsWith(`${kept}/`)));
}

/** The commits among `shas` that the repo holds (a `.git/shallow` line may name one gc pruned). One read-only git process. */
async function heldCommits(host: Host, repo: string, shas: string[]): Promise<string[]> {
  const result = await host.run('git', ['-C', repo, 'cat-file', '--batch-check=%(objectname) %(objecttype)'], { readOnly: true, input: shas.map((sha) => `${sha}\n`).join('') });
  if (result.exitCode !== 0) throw new Error(`git cat-file --batch-check in ${repo} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  const held = new Set(result.stdout.split('\n').filter((line) => line.endsWith(' commit')).map((line) => line.split(' ')[0]!));
  return shas.filter((sha) => held.has(sha));
}

async function observeBundleFile(store: Store, key: string): Promise<BundleFileObserved> {
  const where = store.where(key);
  try {
    const info = await store.stat(key);
    if (!info) return { state: 'missing' };
    if (info.type !== 'file') return { state: 'unreadable', error: `${where} is not a regular file` };
    const header = await readBundleHeader(store, key, where);
    const refs: Record<string, string> = {};
    for (const ref of header.refs) refs[ref.name] ??= ref.sha;
    return { state: 'present', size: info.size, objectFormat: header.objectFormat, refs, prerequisites: header.prerequisites.length };
  } catch (error) {
    return { state: 'unreadable', error: (error as Error).message };
  }
}

/**
 * Bundle refs whose commits are not reachable from any of the repo's refs (the repo lacks the
 * object, or has it only outside the refs that go into a new bundle). Read-only git calls.
 */
async function commitsMissingFromRepo(host: Host, repo: string, bundleRefs: Record<string, string>, repoRefs: Record<string, string>): Promise<{ ref: string; sha: string }[]> {
  const tips = [...new Set(Object.values(repoRefs))];
  const contained = new Map<string, boolean>();
  const lost: { ref: string; sha: string }[] = [];
  for (const [ref, sha] of Object.entries(bundleRefs)) {
    if (tips.includes(sha)) continue;
    let known = contained.get(sha);
    if (known === undefined) {
      const exists = await host.run('git', ['-C', repo, 'cat-file', '-e', sha], { readOnly: true });
      if (exists.exitCode !== 0) known = false;
      else {
        const input = [sha, ...tips.map((tip) => `^${tip}`)].join('\n') + '\n';
        const reachable = await host.run('git', ['-C', repo, 'rev-list', '--max-count=1', '--stdin'], { readOnly: true, input });
        known = reachable.exitCode === 0 && reachable.stdout.trim() === '';
      }
      contained.set(sha, known);
    }
    if (!known) lost.push({ ref, sha });
  }
  return lost;
}

/**
 * The paths (relative to the repo) of the environment's links that lie inside it. Never part of
 * the saved work tree (worktree.ts): a link is this machine's symlink to its mount, not the user's
 * work. Syncs' folders and files inside the repo are saved as any other file.
 */
export function linksInRepo(repo: string, links: Record<string, ResolvedLink>): string[] {
  return pathsInRepo(repo, Object.values(links).map((link) => link.path));
}

/** Those of `paths` that lie inside the repo, relative to it. */
function pathsInRepo(repo: string, paths: string[]): string[] {
  return paths.map((path) => relative(repo, path)).filter((rel) => rel !== '' && rel !== '..' && !rel.startsWith('../') && !rel.startsWith('/'));
}

/** Links that live inside the repo and whose path the repo tracks (git then sees the symlink as a change). */
async function trackedLinkPaths(host: Host, repo: string, links: Record<string, ResolvedLink>): Promise<string[]> {
  const inside = linksInRepo(repo, links);
  if (inside.length === 0) return [];
  const listed = await host.run('git', ['--literal-pathspecs', '-C', repo, 'ls-files', '-z', '--', ...inside], { readOnly: true });
  if (listed.exitCode !== 0) return [];
  const tracked = splitNul(listed.stdout);
  return inside.filter((rel) => tracked.some((path) => path === rel || path.startsWith(`${rel}/`))).map((rel) => join(repo, rel));
}

export async function observeBundle(bundle: ResolvedBundle, ctx: ObserveContext): Promise<BundleObserved> {
  const { host } = ctx;
  const store = ctx.mountReady[bundle.bucket] === true ? ctx.store(bundle.bucket) : null;
  const [repo, file] = await Promise.all([observeRepo(host, bundle.repo), store ? observeBundleFile(store, bundle.relFile) : Promise.resolve<BundleFileObserved>({ state: 'unknown' })]);
  const kept = store ? await Promise.all(Array.from({ length: bundle.keep }, async (_, i) => ((await store.stat(generationPath(bundle.relFile, i + 1))) ? i + 1 : 0))) : [];
  const generations = kept.filter((generation) => generation > 0);
  let lost: BundleObserved['lost'] = [];
  let trackedLinks: string[] = [];
  if (repo.state === 'git' && repo.head.sha) {
    // One `git status` when the work tree is clean or as last recorded; a snapshot with throwaway objects otherwise.
    const saved = file.state === 'present' ? (file.refs[WORKTREE_REF] ?? null) : null;
    repo.worktree = await observeWorktree(host, bundle.repo, saved, repo.head.sha, linksInRepo(bundle.repo, ctx.env.links));
  }
  // (Cast: the type guard would narrow a repo without commits to no type at all.)
  if (repo.state === 'git' && file.state === 'missing' && !hasCommits(repo as RepoObserved)) {
    const files = await filesToCommit(host, bundle.repo, ctx.env);
    if (files.length) repo.uncommitted = { count: files.length, sample: files.slice(0, 3) };
  }
  if (hasCommits(repo)) {
    const repoRefs = repoRefMap(repo);
    const differs = file.state !== 'present' || !sameRefs(file.refs, repoRefs);
    // Only off the converged path: no git process runs when the bundle already matches.
    if (differs) {
      if (file.state === 'present') {
        const committed = Object.fromEntries(Object.entries(file.refs).filter(([ref]) => !isPersistRef(ref)));
        // The repo's own refs only: the work-tree snapshot observed here lives in throwaway
        // objects the repo does not have, and git refuses a tip it does not know.
        const committedTips = Object.fromEntries(Object.entries(repoRefs).filter(([ref]) => !isPersistRef(ref)));
        const hasObject = async (sha: string) => (await host.run('git', ['-C', bundle.repo, 'cat-file', '-e', `${sha}^{commit}`], { readOnly: true })).exitCode === 0;
        lost = [...(await commitsMissingFromRepo(host, bundle.repo, committed, committedTips)), ...(await lostSavedWork(file.refs, repoRefs, repo.worktreeRef, hasObject))];
      }
      trackedLinks = await trackedLinkPaths(host, bundle.repo, ctx.env.links);
    }
  }
  const damaged = store && file.state === 'present' && hasCommits(repo) ? await bundleFoundDamaged(host, store, bundle) : false;
  return { repo, bundle: file, generations, lost, trackedLinks, ...(damaged ? { damaged } : {}) };
}

/** Paths git could not read: an untracked one is left out of the saved work tree, a tracked one is saved as staged. */
function skippedWarning(bundle: ResolvedBundle, skipped: string[]): string {
  return `${plural(skipped.length, 'path')} in ${bundle.repo} cannot be read by git (untracked: not saved; tracked: saved as staged): ${samplePaths(skipped, 10)}`;
}

export function diffBundle(bundle: ResolvedBundle, observed: BundleObserved, options: PlanOptions): Decision | null {
  const address = addressOf('bundle', bundle.name);
  const { repo, bundle: file } = observed;
  const linkWarnings = observed.trackedLinks.map(
    (path) => `${path} is linked into the mount but tracked by the repo: git sees the symlink as a change; untrack it (git rm -r --cached) and add it to .gitignore`,
  );
  const worktreeSeen = repo.state === 'git' ? repo.worktree : null;
  const skipped = worktreeSeen && worktreeSeen.state !== 'unreadable' ? (worktreeSeen.skipped ?? []) : [];
  const warnings = skipped.length ? [skippedWarning(bundle, skipped), ...linkWarnings] : linkWarnings;
  const restore = (reason: string, changes: Change[]): Decision => ({ address, kind: 'bundle', action: 'restore', phase: 'restore', reason, changes });
  const update = (reason: string, changes: Change[], extraWarnings: string[] = []): Decision => {
    const all = [...extraWarnings, ...warnings];
    return { address, kind: 'bundle', action: 'update', phase: 'push', reason, changes, ...(all.length ? { warnings: all } : {}) };
  };
  const conflict = (phase: 'restore' | 'push', message: string, fix: string, changes: Change[] = [], overrideFlag?: string): Decision => ({
    address,
    kind: 'bundle',
    action: 'conflict',
    phase,
    reason: message,
    changes,
    conflict: { message, fix, ...(overrideFlag ? { overrideFlag } : {}) },
  });
  const previousKept = bundle.keep > 0 ? `the current bundle is kept as ${bundle.relFile}.1` : 'keep is 0: the current bundle is not kept';

  if (repo.state === 'not-dir') {
    return conflict('restore', `${bundle.repo} is not a directory`, `move it away (or change bundles.${bundle.name}.repo), then run persist apply again`);
  }
  if (repo.state === 'unreadable') {
    return conflict('push', `cannot read the git repository at ${bundle.repo}: ${repo.error}`, `repair it (git status shows what is wrong), or move it aside and run persist apply to restore it from ${bundle.file}`);
  }

  const needsRestore = !hasCommits(repo);
  // Lineage: a repo that holds another store's data is never saved into this one.
  if (!needsRestore && observed.lineage?.foreign) return bundleLineageVerdict(bundle, observed.lineage, false, 0, options).decision!;
  if (file.state === 'unknown') {
    const mountNote = `the mount of bucket ${bundle.bucket} is not ready yet`;
    return needsRestore
      ? restore(`${mountNote}: whether ${bundle.relFile} exists to restore ${bundle.repo} from is decided after the mount`, [])
      : update(`${mountNote}: ${bundle.relFile} is re-checked against the repo's refs after the mount`, []);
  }

  if (file.state === 'unreadable') {
    if (needsRestore) {
      const earlier = observed.generations.includes(1) ? `; an earlier generation is ${generationPath(bundle.file, 1)}: move it into place to restore from it` : '';
      return conflict('restore', `cannot restore ${bundle.repo}: ${file.error}`, `check the bundle in the bucket${earlier}`);
    }
    const message = `the bundle cannot be read (${file.error}); replacing it could lose what it holds`;
    if (options.allowShrink) return update(`${message}; --allow-shrink replaces it (${previousKept})`, refChanges({}, repoRefMap(repo as Extract<RepoObserved, { state: 'git' }>)));
    return conflict('push', message, `check the file in the bucket and move it aside, or pass --allow-shrink to replace it (${previousKept})`, [], '--allow-shrink');
  }

  if (file.state === 'missing') {
    if (needsRestore) return null; // nothing saved and nothing to save yet
    const repoRefs = repoRefMap(repo as Extract<RepoObserved, { state: 'git' }>);
    const tree = worktreeChange(null, (repo as Extract<RepoObserved, { state: 'git' }>).worktree);
    return update(`${bundle.relFile} does not exist yet in bucket ${bundle.bucket}: create it`, [...refChanges({}, repoRefs), ...(tree ? [tree] : [])]);
  }

  if (needsRestore) {
    if (file.prerequisites > 0) {
      return conflict(
        'restore',
        `${bundle.file} is not a full bundle (it needs ${file.prerequisites} prerequisite commit(s)), so ${bundle.repo} cannot be restored from it`,
        `restore the repository by hand (git clone from its remote, then git fetch the bundle), then run persist apply again`,
      );
    }
    const where =
      repo.state === 'missing'
        ? `${bundle.repo} does not exist`
        : repo.state === 'no-git'
          ? `${bundle.repo} has no .git${repo.entries > 0 ? ` (its ${repo.entries} existing entries are kept)` : ''}`
          : `${bundle.repo} has no commits yet`;
    return restore(`${where}: restore it from ${bundle.relFile}`, refChanges({}, file.refs));
  }

  const worktree = (repo as Extract<RepoObserved, { state: 'git' }>).worktree;
  if (worktree?.state === 'unreadable') {
    return conflict('push', `cannot snapshot the work tree of ${bundle.repo}: ${worktree.error}`, `fix what git reports (git status shows it), then run persist apply again`);
  }
  const repoRefs = repoRefMap(repo as Extract<RepoObserved, { state: 'git' }>);
  const differing = [...new Set([...Object.keys(file.refs), ...Object.keys(repoRefs)])].filter((name) => file.refs[name] !== repoRefs[name]).length;
  // Lineage: saved only on top of what this machine saw; what it never saw is restored (the repo kept aside).
  const verdict = bundleLineageVerdict(bundle, observed.lineage, true, differing, options);
  if (verdict.decision) return verdict.decision;
  if (verdict.restore) {
    if (!verdict.restore.recordOnly && file.prerequisites > 0) {
      return conflict('restore', `${bundle.file} is not a full bundle (it needs ${file.prerequisites} prerequisite commit(s)), so ${bundle.repo} cannot be restored from it`, `save the repo with persist apply --force-push, or restore it by hand`);
    }
    const decision = restore(verdict.restore.reason, [...verdict.restore.changes, ...(verdict.restore.recordOnly ? [] : refChanges(repoRefs, file.refs))]);
    if (verdict.restore.note) decision.note = verdict.restore.note;
    return decision;
  }
  if (differing === 0) {
    if (!observed.damaged) return null;
    // Not kept as a generation: the repo holds the same refs, and a damaged file is no way back.
    const repair = update(`persist verify found ${bundle.relFile} damaged: it is written again from ${bundle.repo}, which holds the same refs (the damaged file is not kept)`, []);
    repair.note = 'repair';
    return repair;
  }
  const tree = worktreeChange(file.refs[WORKTREE_REF] ?? null, worktree);
  const changes = [...refChanges(file.refs, repoRefs), ...(tree ? [tree] : [])];
  if (observed.lost.length > 0) {
    const lostList = observed.lost.map((entry) => `${entry.ref} ${short(entry.sha)}`).join(', ');
    const message = `${bundle.relFile} holds commits that ${bundle.repo} does not contain (${lostList}): updating it would drop them from the newest bundle`;
    if (verdict.mayDrop) return update(verdict.mayDrop, changes, [message]);
    if (options.allowShrink) return update(`${bundle.repo}'s refs differ from the bundle's; --allow-shrink drops commits only the bundle holds (${previousKept})`, changes, [message]);
    return conflict(
      'push',
      message,
      `to get them back, move ${bundle.repo} aside and run persist apply (it restores the repo from the bundle), then bring your changes over; or pass --allow-shrink to save the repo as it is (${previousKept})`,
      changes,
      '--allow-shrink',
    );
  }
  const onlyTree = refChanges(file.refs, repoRefs).length === 0;
  return update(onlyTree ? `${bundle.repo}'s uncommitted work differs from the snapshot in ${bundle.relFile}` : `${bundle.repo}'s refs differ from ${bundle.relFile}`, changes);
}

/** The ref map of a bundle header (HEAD included), as the repo's side compares with it. */
export function headerRefMap(refs: { name: string; sha: string }[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const ref of refs) map[ref.name] ??= ref.sha;
  return map;
}

/** Local paths of the environment's other resources: a repo kept aside leaves them where they are. */
export function otherResourcePaths(bundle: ResolvedBundle, env: ResolvedEnvironment): string[] {
  const { links, syncs, files, bundles } = env;
  return [
    ...Object.values(links).map((link) => link.path),
    ...Object.values(syncs).map((sync) => sync.from),
    ...Object.values(files).map((file) => file.to),
    ...Object.values(bundles).filter((other) => other.name !== bundle.name).map((other) => other.repo),
  ];
}

async function applyBundle(bundle: ResolvedBundle, decision: Decision, now: BundleObserved, ctx: ApplyContext): Promise<ApplyOutcome> {
  const store = ctx.store(bundle.bucket);
  if (decision.action === 'update') {
    const repo = now.repo as Extract<RepoObserved, { state: 'git' }>;
    const generation = await BundleUpdate.begin(ctx.host, store, bundle, now.lineage?.current?.generation ?? null);
    const refs = Object.fromEntries(Object.entries(repoRefMap(repo)).filter(([name]) => name !== WORKTREE_REF));
    let skipped: string[] = [];
    let unsettled: string[] = [];
    if (repo.head.sha) {
      ctx.report('snapshotting the work tree');
      // Made on the HEAD these refs record, whatever the agent commits meanwhile (a commit
      // changes no file of the work tree: that HEAD with the files as they are now existed).
      const saved = await saveWorktree(ctx.host, bundle.repo, repo.worktreeRef, linksInRepo(bundle.repo, ctx.env.links), repo.head.sha);
      if (saved.sha) refs[WORKTREE_REF] = saved.sha;
      skipped = saved.skipped;
      unsettled = saved.unsettled;
    }
    // What git could not read is left out (shutdown then counts the bundle as not saved); the
    // plan's warning about it is replaced by that line, which names what the update itself found.
    const notSaved = [
      ...(skipped.length ? [{ message: unreadableWork(bundle.repo, skipped), transient: false }] : []),
      ...(unsettled.length ? [{ message: unsettledWork(bundle.repo, unsettled), transient: true }] : []),
    ];
    const notes = [...notSaved.map((left) => left.message), ...(decision.warnings ?? []).filter((warning) => !skipped.length || !warning.includes('cannot be read by git'))];
    const left = { ...(notes.length ? { notes } : {}), ...(notSaved.length ? { notSaved } : {}), verifiedInStore: true as const };
    // The stored bundle already holds these very refs (a file that changed at every read kept its
    // last saved version, and nothing else changed): another copy would only push a real
    // generation out of the kept ones.
    if (decision.note !== 'repair' && now.bundle.state === 'present' && sameRefs(refs, now.bundle.refs)) {
      return { summary: `${bundle.relFile} already holds these refs: nothing written`, ...left };
    }
    // A repair (verify found the stored file damaged) replaces it without keeping it as <file>.1.
    const keep = decision.note === 'repair' ? 0 : bundle.keep;
    const written = await writeBundle(ctx.host, store, { repo: bundle.repo, key: bundle.relFile, keep, refs }, ctx.report, ctx.signal, generation);
    await recordBundleDamage(ctx.host, bundle, null);
    const record = await generation.commit();
    await recordBundleSeen(ctx.host, ctx.env, bundle, record, 'push', headerRefMap(written.header.refs));
    const kept = written.generations.length ? `, earlier generations: ${written.generations.map((g) => `.${g}`).join(' ')}` : '';
    const committed = written.header.refs.filter((ref) => ref.name !== 'HEAD' && !isPersistRef(ref.name)).length;
    const extra = [repo.stash.length ? plural(repo.stash.length, 'stash entry', 'stash entries') : '', refs[WORKTREE_REF] ? 'the uncommitted work' : ''].filter(Boolean).join(' and ');
    // writeBundle checked the stored bundle against what it built: an agent that commits or edits
    // again before the executor verifies does not fail the update (the next one takes it).
    return { summary: `wrote ${bundle.relFile} (${plural(committed, 'ref')}${extra ? `, ${extra}` : ''}, ${written.size} bytes${kept})`, ...left };
  }

  const file = now.bundle as Extract<BundleFileObserved, { state: 'present' }>;
  if (hasCommits(now.repo) && sameRefs(file.refs, repoRefMap(now.repo))) {
    // Lineage only: the repo already holds the store's generation.
    const record = await currentBundleRecord(store, bundle);
    await recordBundleSeen(ctx.host, ctx.env, bundle, record, 'restore', file.refs);
    return { summary: `recorded generation ${record?.generation ?? 0} of ${bundle.relFile} as seen here (${bundle.repo} already holds it)` };
  }
  const result = await restoreRepo(ctx.host, bundle, store, bundle.relFile, file.objectFormat, { workspace: ctx.env.workspace, spare: otherResourcePaths(bundle, ctx.env), links: linksInRepo(bundle.repo, ctx.env.links), existing: now.repo }, ctx.report);
  await recordBundleSeen(ctx.host, ctx.env, bundle, await currentBundleRecord(store, bundle), 'restore', file.refs);
  const notes = [...(result.keptAside ? [`the local repo was kept aside in ${result.keptAside}`] : []), ...result.notes];
  // A shallow history in a bundle that does not record its boundary: the repo now has it, the next update saves it.
  return { summary: result.summary, ...(notes.length ? { notes } : {}), ...(result.shallowUnrecorded ? { followedBy: 'update' } : {}) };
}

export interface RepoRestored {
  summary: string;
  /** What the user should know (the stash or work that could not come back, files kept). */
  notes: string[];
  /** Where the repo that was there went (null: it had no commits, nothing was moved). */
  keptAside: string | null;
  refs: number;
  /** The bundle holds a shallow history without recording its boundary (restore.ts): the repo now names it, and differs from the bundle until the next update. */
  shallowUnrecorded: boolean;
  /** `main (abc123def456)` or `detached abc123def456`. */
  at: string;
}

/**
 * The repo becomes the content of the bundle at `key`: a repo with commits is kept aside first
 * (restore.ts, keepRepoAside); then refs, work tree, stash and uncommitted work come from the bundle.
 */
export async function restoreRepo(
  host: Host,
  bundle: ResolvedBundle,
  store: Store,
  key: string,
  objectFormat: 'sha1' | 'sha256',
  /** `spare`: other resources' paths (kept in place); `links`: the links inside the repo (linksInRepo), never in a snapshot. */
  where: { workspace: string; spare: string[]; links: string[]; existing: RepoObserved },
  report: (message: string) => void,
): Promise<RepoRestored> {
  const keptAside = hasCommits(where.existing) ? await keepRepoAside(host, { repo: bundle.repo, workspace: where.workspace, address: addressOf('bundle', bundle.name), spare: where.spare, links: where.links }, report) : null;
  const existingGitDir = !keptAside && where.existing.state === 'git' ? await findGitDir(host, bundle.repo) : null;
  // git reads a file: a store that is not a folder (the S3 API) gives a private temporary copy.
  const direct = store.localPath(key);
  const local = direct ?? (await downloadToTemp(host, store, key));
  let restored: Awaited<ReturnType<typeof restoreFromBundle>>;
  try {
    restored = await restoreFromBundle(host, { repo: bundle.repo, file: local, objectFormat, remote: bundle.remote, existingGitDir }, report);
  } finally {
    if (direct === null) await host.remove(local).catch(() => undefined);
  }
  const saved = await restoreSavedWork(host, bundle.repo, restored.persistRefs, where.links);
  const notes = [...saved.notes];
  if (restored.unrecordedBoundary.length) {
    notes.push(`the bundle holds a shallow history without naming where it stops (written before persist recorded it): ${plural(restored.unrecordedBoundary.length, 'boundary commit')} written into .git/shallow; the next update records ${restored.unrecordedBoundary.length === 1 ? 'it' : 'them'}`);
  }
  if (restored.differing.length) {
    notes.push(`kept ${restored.differing.length} existing file(s) that differ from the bundle: ${samplePaths(restored.differing, 10)} (git status shows them as modified)`);
  }
  if (restored.blocked.length) {
    notes.push(`not checked out, a symlink or file lies on their path: ${samplePaths(restored.blocked, 10)}`);
  }
  const at = restored.headRef ? `${restored.headRef.replace(/^refs\/heads\//, '')} (${short(restored.headSha)})` : `detached ${short(restored.headSha)}`;
  const extra = [saved.stash ? plural(saved.stash, 'stash entry', 'stash entries') : '', saved.worktree ? 'the uncommitted work' : ''].filter(Boolean).join(' and ');
  return { summary: `restored ${plural(restored.refs, 'ref')} at ${at}, checked out ${plural(restored.checkedOut, 'file')}${extra ? `, brought back ${extra}` : ''}`, notes, keptAside, refs: restored.refs, shallowUnrecorded: restored.unrecordedBoundary.length > 0, at };
}

async function bundleFacts(bundle: ResolvedBundle, observed: BundleObserved, ctx: ObserveContext): Promise<Facts> {
  const base = { repo: bundle.repo, file: bundle.file };
  if (observed.bundle.state === 'unknown') return { ...base, bundle: 'unknown (mount not ready)' };
  if (observed.bundle.state === 'missing') return { ...base, bundle: 'missing' };
  const facts: Facts = { ...base };
  const info = await ctx.store(bundle.bucket).stat(bundle.relFile);
  if (info) {
    facts.size = info.size;
    facts.age = formatAge(info.mtimeMs, ctx.host.now());
  }
  if (observed.bundle.state === 'unreadable') facts.problem = observed.bundle.error;
  else {
    facts.refs = Object.keys(observed.bundle.refs).filter((name) => name !== 'HEAD' && !isPersistRef(name)).length;
    facts.stash = Object.keys(observed.bundle.refs).filter((name) => name.startsWith('refs/persist/stash/')).length;
    facts.worktree = observed.bundle.refs[WORKTREE_REF] ? `snapshot ${short(observed.bundle.refs[WORKTREE_REF])}` : 'as committed';
    facts.head = short(observed.bundle.refs.HEAD) ?? null;
  }
  return { ...facts, ...bundleLineageFacts(observed.lineage, ctx.host.now()) };
}

/** Status: a bundle file that does not exist because the repo has nothing to save yet. */
export function bundleUnsaved(bundle: ResolvedBundle, observed: BundleObserved): string | null {
  const repo: RepoObserved['state'] = observed.repo.state;
  if (observed.bundle.state !== 'missing' || hasCommits(observed.repo)) return null;
  const why = repo === 'missing' ? `${bundle.repo} does not exist` : repo === 'git' ? (uncommittedWork(bundle, observed) ?? `the repo ${bundle.repo} has no commits`) : `${bundle.repo} is not a git repository`;
  return `nothing saved yet: ${why}`;
}

/** A repo without commits (and without a bundle) that holds files: they are in no store until committed. */
function uncommittedWork(bundle: ResolvedBundle, observed: BundleObserved): string | null {
  const uncommitted = observed.repo.state === 'git' && observed.bundle.state === 'missing' ? observed.repo.uncommitted : undefined;
  if (!uncommitted) return null;
  const { count, sample } = uncommitted;
  const more = count > sample.length ? ` and ${count - sample.length} more` : '';
  return (
    `the repo ${bundle.repo} has no commits; its ${plural(count, 'file')} (${samplePaths(sample)}${more}) ${count === 1 ? 'is' : 'are'} not in the store ` +
    `(a bundle holds commits: commit ${count === 1 ? 'it' : 'them'}, e.g. git -C ${bundle.repo} add -A && git -C ${bundle.repo} commit, then persist apply saves the repo)`
  );
}

/**
 * What a bundle with nothing to do leaves outside the store: the files of a repo without commits,
 * or the paths of its work tree git cannot read (no update takes them until they change).
 */
export function bundleUnsavedWork(bundle: ResolvedBundle, observed: BundleObserved): string | null {
  const uncommitted = uncommittedWork(bundle, observed);
  if (uncommitted) return uncommitted;
  const worktree = observed.repo.state === 'git' ? observed.repo.worktree : null;
  const skipped = worktree && worktree.state !== 'unreadable' ? (worktree.skipped ?? []) : [];
  return skipped.length ? unreadableWork(bundle.repo, skipped) : null;
}

export const bundleModule: ResourceModule<ResolvedBundle, BundleObserved> = {
  kind: 'bundle',
  // Restored first (links, syncs and files may lie in its repo); updated after the sync pushes.
  phaseRank: { restore: 0, push: 1 },
  resources: (env) => env.bundles,
  needsBucket: (bundle) => bundle.bucket,
  readiness: null,
  localPaths: (bundle) => [bundle.repo],
  contains: (bundle) => [bundle.repo],
  observe: async (bundle, ctx) => {
    const state = await observeBundle(bundle, ctx);
    state.lineage = await observeBundleLineage(bundle, ctx, ctx.mountReady[bundle.bucket] === true ? ctx.store(bundle.bucket) : null, hasCommits(state.repo) ? repoRefMap(state.repo) : null);
    return { state, detail: null };
  },
  diff: diffBundle,
  apply: (bundle, decision, seen, ctx) => applyBundle(bundle, decision, seen.state, ctx),
  // A restore fills only a folder without commits (or records that the repo already holds the
  // bundle); one that keeps a repo with commits aside needs a person. An update saves the repo, and
  // one that would drop commits only the bundle holds is a conflict, never an update (watch has no
  // --allow-shrink), unless the repo was rolled back from them (they stay in history).
  unattended: (decision, state) => decision.action === 'update' || (decision.action === 'restore' && (!hasCommits(state.repo) || decision.note === undefined)),
  facts: bundleFacts,
  unsaved: bundleUnsaved,
  unsavedWork: bundleUnsavedWork,
};
