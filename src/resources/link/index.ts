// `link.<name>`: `<workspace>/<name>` is an absolute symlink to `<mount>/<path>`.
// missing -> create; empty directory -> create (the directory is set aside); directory with
// content -> adopt (adopt.ts); symlink elsewhere -> relink; the right symlink with its target
// missing, or not known before a FUSE mount is up -> create (the re-check after the mount
// decides); anything else -> conflict.
import { dirname, join, resolve } from 'node:path';
import { blockingAncestor } from '../../host/blocked.js';
import type { Host } from '../../host/types.js';
import { addressOf } from '../../engine/address.js';
import type { ApplyContext, ApplyOutcome, Decision, Facts, ObserveContext, ResourceModule } from '../../engine/types.js';
import { ActionError } from '../../errors.js';
import type { ResolvedEnvironment, ResolvedLink } from '../../spec/types.js';
import { adoptDirectory, compactStamp, journalPath, linkBackupDir, observeJournal, replaceSymlink, type JournalObserved } from './adopt.js';
import { describeUnreadable, unreadableFix, unreadableIn, type Unreadable } from './readable.js';

/** What lies at the link path. */
export type LinkPathObserved =
  | { state: 'missing'; blockedBy?: { path: string; type: string } }
  | { state: 'symlink'; linkTo: string }
  | { state: 'dir'; entries: number }
  | { state: 'file'; size: number }
  | { state: 'other' };

/** The target in the mount; `unknown` while the mount cannot be looked into. */
export type LinkTargetObserved = 'dir' | 'missing' | 'not-dir' | 'unknown';

export interface LinkObserved {
  path: LinkPathObserved;
  target: LinkTargetObserved;
  /** An adopt that has not finished (its journal is still there). */
  journal: JournalObserved | null;
  /** Processes holding a file or their working directory inside the folder to adopt. */
  openers?: { pid: number; command: string; path: string }[];
  /** What of the folder to adopt persist cannot read (readable.ts). */
  unreadable?: Unreadable;
}

export async function observeLink(link: ResolvedLink, ctx: Pick<ObserveContext, 'host' | 'mountReady'> & { env?: ResolvedEnvironment }): Promise<LinkObserved> {
  const { host } = ctx;
  const observed: LinkObserved = {
    path: await observePath(host, link.path),
    target: ctx.mountReady[link.bucket] ? await observeTarget(host, link.target) : await targetBeforeMount(host, link, ctx.env),
    journal: await observeJournal(host, link),
  };
  // Only a folder to adopt is looked for in /proc: writes through a handle held open inside it
  // would land in the moved-aside original, never in the bucket.
  if (observed.path.state === 'dir' && observed.path.entries > 0) {
    const openers = await host.openersOf(link.path);
    if (openers.length > 0) observed.openers = openers.slice(0, 5);
    // An adopt copies every file before it moves the folder: what it cannot read is named now.
    const unreadable = await unreadableIn(host, link.path);
    if (unreadable) observed.unreadable = unreadable;
  }
  return observed;
}

async function observePath(host: Host, path: string): Promise<LinkPathObserved> {
  const info = await host.lstat(path);
  if (info === null) {
    const blockedBy = await blockingAncestor(host, path);
    return blockedBy ? { state: 'missing', blockedBy } : { state: 'missing' };
  }
  switch (info.type) {
    case 'symlink':
      return { state: 'symlink', linkTo: await host.readlink(path) };
    case 'dir':
      return { state: 'dir', entries: (await host.readdir(path)).length };
    case 'file':
      return { state: 'file', size: info.size };
    default:
      return { state: 'other' };
  }
}

/**
 * The target while its bucket is not ready: unknown until a FUSE mount is up, but a `local`
 * bucket's folder that does not exist is made empty by its mount, so the target is missing (a
 * correct link into a bucket folder that was lost is then re-created in the same apply).
 */
async function targetBeforeMount(host: Host, link: ResolvedLink, env: ResolvedEnvironment | undefined): Promise<LinkTargetObserved> {
  const mount = env?.buckets[link.bucket]?.mount;
  return mount?.backend === 'local' && (await host.lstat(mount.path)) === null ? 'missing' : 'unknown';
}

async function observeTarget(host: Host, target: string): Promise<LinkTargetObserved> {
  const info = await host.lstat(target);
  if (info === null) return 'missing';
  return info.type === 'dir' ? 'dir' : 'not-dir';
}

function describePath(path: LinkPathObserved): string {
  switch (path.state) {
    case 'missing':
      return '(missing)';
    case 'symlink':
      return path.linkTo;
    case 'dir':
      return path.entries === 0 ? '(empty directory)' : `(directory, ${path.entries} ${path.entries === 1 ? 'entry' : 'entries'})`;
    case 'file':
      return `(regular file, ${path.size} bytes)`;
    case 'other':
      return '(special file)';
  }
}

export function diffLink(link: ResolvedLink, observed: LinkObserved): Decision | null {
  const base = { address: addressOf('link', link.name), kind: 'link' as const, phase: 'link' as const };
  const conflict = (message: string, fix: string): Decision => ({
    ...base,
    action: 'conflict',
    reason: message,
    changes: [],
    conflict: { message, fix },
  });
  const toTarget = [{ field: 'target', before: observed.path.state === 'missing' ? null : describePath(observed.path), after: link.target }];
  const { path, journal } = observed;

  if (path.state === 'file') {
    return conflict(
      `${link.path} is a regular file (${path.size} bytes) where the link belongs`,
      `move it away (into ${link.target} if it belongs with the data), then run persist apply again`,
    );
  }
  if (path.state === 'other') {
    return conflict(
      `${link.path} is neither a directory nor a symlink (a socket, FIFO or device) where the link belongs`,
      `stop whatever uses it and move it away, then run persist apply again`,
    );
  }
  if (journal?.state === 'unreadable') {
    return conflict(
      `the adopt journal ${journalPath(link)} is unreadable: ${journal.problem}`,
      `check that the data described there is in ${link.target} (backups are in ${linkBackupDir(link)}), remove the journal, then run persist apply again`,
    );
  }
  if (observed.target === 'not-dir') {
    return conflict(
      `${link.target} in the mount is not a directory`,
      `move it away in the bucket (or change the link's path in the spec), then run persist apply again`,
    );
  }
  if (path.state === 'dir' && observed.unreadable) {
    return conflict(
      `${link.path} cannot be adopted: it holds ${describeUnreadable(observed.unreadable)}`,
      unreadableFix(link.path, observed.unreadable.count),
    );
  }
  if (journal) {
    if (path.state === 'symlink' && path.linkTo === link.target) {
      return { ...base, action: 'adopt', reason: `finish an interrupted adopt: the link is in place; verify the copy and remove ${journalPath(link)}`, changes: [] };
    }
    const kept = journal.backupExists ? ` (original kept at ${journal.backup})` : '';
    return { ...base, action: 'adopt', reason: `resume an interrupted adopt of ${link.path}${kept}`, changes: toTarget };
  }
  switch (path.state) {
    case 'missing':
      if (path.blockedBy) {
        return conflict(
          `${path.blockedBy.path} is a ${path.blockedBy.type}, not a folder: the link ${link.path} cannot be made inside it`,
          `move it aside (or change the link's path, or the workspace, in the spec), then run persist apply again`,
        );
      }
      return {
        ...base,
        action: 'create',
        reason: observed.target === 'missing' ? `${link.path} does not exist, nor does its target directory` : `${link.path} does not exist`,
        changes: toTarget,
      };
    case 'dir':
      if (path.entries > 0 && observed.openers?.length) {
        const who = observed.openers.map((o) => `pid ${o.pid} (${o.command}) has ${o.path} open`).join('; ');
        return conflict(
          `${link.path} is in use: ${who}; an adopt now could lose its writes (they would land in the moved-aside original)`,
          `stop that process (adopt belongs before the agent starts), then run persist apply again`,
        );
      }
      if (path.entries === 0) {
        return { ...base, action: 'create', reason: `${link.path} is an empty directory: it is replaced by the link`, changes: toTarget };
      }
      return {
        ...base,
        action: 'adopt',
        reason: `${link.path} is a directory with ${path.entries} ${path.entries === 1 ? 'entry' : 'entries'}: copy it into the mount, verify, keep a backup, link it`,
        changes: toTarget,
      };
    case 'symlink':
      if (path.linkTo === link.target) {
        // A bucket emptied (or a new one) under a link that is right: its target is looked for
        // once the mount is up, by the re-check before this action (nothing is done if it is there).
        if (observed.target === 'unknown') {
          return { ...base, action: 'create', reason: `the mount of bucket ${link.bucket} is not ready yet: the target directory is made after the mount if it is missing`, changes: [] };
        }
        if (observed.target !== 'missing') return null;
        return { ...base, action: 'create', reason: 'target directory missing in the mount', changes: [{ field: 'target directory', before: null, after: link.target }] };
      }
      return {
        ...base,
        action: 'relink',
        reason: resolve(dirname(link.path), path.linkTo) === link.target ? 'the link is relative; it is made absolute' : `the link points at ${path.linkTo}`,
        changes: toTarget,
      };
  }
}

async function createLink(host: Host, link: ResolvedLink, observed: LinkObserved): Promise<ApplyOutcome> {
  await host.mkdir(link.target);
  const notes: string[] = [];
  if (observed.path.state === 'symlink') return { summary: `created ${link.target}` };
  await host.mkdir(dirname(link.path));
  if (observed.path.state === 'dir') {
    // rename(2) cannot put a symlink over a directory, so the empty directory is set aside first:
    // moved (never deleted) into the backups, and removed there only if it is still empty.
    const aside = join(linkBackupDir(link), `${link.name}-empty-${compactStamp(host.now())}-${host.pid()}`);
    await host.mkdir(linkBackupDir(link), { mode: 0o700 });
    await host.rename(link.path, aside);
    if ((await host.readdir(aside)).length === 0) {
      await host.remove(aside);
    } else {
      notes.push(`files appeared in ${link.path} while it was being replaced; they are kept at ${aside}`);
    }
  }
  // symlink(2) fails if anything appeared at the path meanwhile: nothing is ever overwritten.
  await host.symlink(link.target, link.path);
  return { summary: observed.path.state === 'dir' ? 'replaced the empty directory by the link' : 'created the link', notes };
}

async function relink(host: Host, link: ResolvedLink, observed: LinkObserved): Promise<ApplyOutcome> {
  const before = observed.path.state === 'symlink' ? observed.path.linkTo : '?';
  // The old target may be another environment's mount: it is left exactly as it is, nothing copied.
  await host.mkdir(link.target);
  await replaceSymlink(host, link);
  return { summary: `relinked from ${before}`, notes: [`nothing was copied from or removed in ${before}`] };
}

export async function applyLink(link: ResolvedLink, decision: Decision, observed: LinkObserved, ctx: Pick<ApplyContext, 'host' | 'report' | 'signal'>): Promise<ApplyOutcome> {
  const { host } = ctx;
  switch (decision.action) {
    case 'create':
      return createLink(host, link, observed);
    case 'relink':
      return relink(host, link, observed);
    case 'adopt':
      return adoptDirectory(host, link, { report: ctx.report, signal: ctx.signal });
    default:
      throw new ActionError(`internal error: link action ${decision.action}`);
  }
}

function linkFacts(link: ResolvedLink, observed: LinkObserved): Facts {
  const is = observed.path.state === 'symlink' ? `-> ${observed.path.linkTo}` : observed.path.state;
  return { path: link.path, target: link.target, is };
}

export const linkModule: ResourceModule<ResolvedLink, LinkObserved> = {
  kind: 'link',
  phaseRank: { link: 0 },
  resources: (env: ResolvedEnvironment) => env.links,
  needsBucket: (link) => link.bucket,
  readiness: null,
  localPaths: (link) => [link.path],
  contains: () => [],
  observe: async (link, ctx) => ({ state: await observeLink(link, ctx), detail: null }),
  diff: (link, observed) => diffLink(link, observed),
  apply: (link, decision, seen, ctx) => applyLink(link, decision, seen.state, ctx),
  // A missing link (or an empty folder where it belongs) hides and moves nothing.
  unattended: (decision) => decision.action === 'create',
  facts: async (link, observed) => linkFacts(link, observed),
};
