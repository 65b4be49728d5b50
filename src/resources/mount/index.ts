// mount.<bucket>: the bucket mounted, healthy, at its path with its backend (or, for `local`, a
// directory standing in for it). Observing is read-only: mountinfo plus a bounded stat and list.
// Mounting counts as done only once the entry is in mountinfo with the expected type and source
// AND a read-write probe succeeds: s3fs exits 0 on bad keys, rclone mounts a missing bucket.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { getBackend, backendOwning } from '../../backends/registry.js';
import type { Backend, BackendContext, LeftoverFile, MountCommand } from '../../backends/types.js';
import { formatAge, formatBytes, plural } from '../../output/format.js';
import { mountAddress } from '../../engine/address.js';
import type { ApplyContext, ApplyOutcome, Conflict, Decision, Facts, MountGuard, ResourceModule } from '../../engine/types.js';
import { ActionError } from '../../errors.js';
import { mountAt } from '../../host/mountinfo.js';
import { bucketRuntimeDir } from '../../host/paths.js';
import type { FileType, Host } from '../../host/types.js';
import { isMounted, type BackendName, type MountedBucket } from '../../spec/types.js';
import { errorMessage } from '../../output/format.js';

/** A live mount must answer a stat and a listing within this time, or it counts as dead. */
export const PROBE_TIMEOUT_MS = 5_000;
/** A fresh mount must appear in mountinfo and pass the read-write probe within this time. */
export const MOUNT_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 150;
/** Probe attempts on a mount that is present but fails (rclone with bad keys mounts anyway). */
const PROBE_ATTEMPTS = 3;

/** What is at the mount path. */
export type MountState =
  | { state: 'missing' }
  /** Something other than a directory at the mount path (a file, a symlink...). */
  | { state: 'not-dir'; type: FileType }
  /** A plain directory, nothing mounted on it; `sample` holds a few of its names. */
  | { state: 'dir'; entries: number; sample: string[] }
  | {
      state: 'mounted';
      /** The mount's id in mountinfo: a remount (or another mount at the path) has another one. */
      mountId: number;
      fsType: string;
      source: string;
      /** The registered backend that made this mount, if any. */
      backend: BackendName | null;
      /** This bucket, mounted by the expected backend. */
      matches: boolean;
      alive: boolean;
      /** Why the mount counts as dead. */
      deadReason?: string;
    };

export type MountObserved = {
  /** What the spec asks for, so that the observation can be judged on its own. */
  expected: { backend: BackendName; bucket: string; path: string };
  /**
   * Unuploaded files a stopped daemon left in the backend's cache (looked for only when no live
   * mount serves the path): `uploadable` ones are uploaded before mounting, `stranded` ones stop
   * the plan with a conflict that names them.
   */
  leftovers?: { uploadable: number; stranded: LeftoverFile[]; strandedCount: number };
} & MountState;

function runtimeContext(host: Host, bucket: MountedBucket): BackendContext {
  return { host, runtimeDir: bucketRuntimeDir(host.env(), bucket), processEnv: host.env() };
}

/** Read-only look at the mount path, plus what a stopped daemon left in its cache when no live mount serves it. */
export async function observeMount(bucket: MountedBucket, host: Host): Promise<MountObserved> {
  const observed = await observeMountPoint(bucket, host);
  const backend = getBackend(bucket.mount.backend);
  if (!backend.leftovers || (observed.state === 'mounted' && observed.alive && observed.matches)) return observed;
  const found = await backend.leftovers(bucket, runtimeContext(host, bucket));
  if (found.uploadable.length === 0 && found.stranded.length === 0) return observed;
  return { ...observed, leftovers: { uploadable: found.uploadable.length, stranded: found.stranded.slice(0, 10), strandedCount: found.stranded.length } };
}

/** Read-only look at the mount path: mountinfo, then a bounded probe or a listing. */
async function observeMountPoint(bucket: MountedBucket, host: Host): Promise<MountObserved> {
  const path = bucket.mount.path;
  const expected = { backend: bucket.mount.backend, bucket: bucket.name, path };
  const backend = getBackend(bucket.mount.backend);
  const entry = mountAt(await host.mounts(), path);
  const owner = entry ? backendOwning(entry) : undefined;
  // For `local`, any mount that is not a persist FUSE mount (a container volume, a bind mount)
  // is just the directory standing in for the bucket.
  if (entry && (backend.fuse || owner)) {
    const probe = await host.probe(path, PROBE_TIMEOUT_MS);
    const alive = probe.state === 'ok';
    return {
      expected,
      state: 'mounted',
      mountId: entry.mountId,
      fsType: entry.fsType,
      source: entry.source,
      backend: owner ?? null,
      matches: backend.matches(entry, bucket),
      alive,
      ...(alive ? {} : { deadReason: probe.state === 'dead' ? probe.reason : 'the mount point does not answer' }),
    };
  }
  const info = await host.lstat(path);
  if (!info) return { expected, state: 'missing' };
  if (info.type !== 'dir') return { expected, state: 'not-dir', type: info.type };
  const names = await host.readdir(path);
  return { expected, state: 'dir', entries: names.length, sample: names.slice(0, 5) };
}

/** Whether the bucket can be looked into now: mounted and healthy, or the local directory exists. */
export function mountReady(observed: MountObserved): boolean {
  if (observed.expected.backend === 'local') {
    return observed.state === 'dir' || (observed.state === 'mounted' && observed.backend === null);
  }
  return observed.state === 'mounted' && observed.matches && observed.alive;
}

function nonEmptyConflict(path: string, observed: { entries: number; sample: string[] }, backend: string): Conflict {
  const names = observed.sample.join(', ') + (observed.entries > observed.sample.length ? ', ...' : '');
  return {
    message: `${path} is a local directory with ${observed.entries} entr${observed.entries === 1 ? 'y' : 'ies'} (${names}) and nothing is mounted there; mounting ${backend} over it would hide them`,
    fix: `move the data aside (mv ${path} ${path}.local && mkdir ${path}), run persist apply, then copy what belongs in the bucket into the mount (cp -a ${path}.local/. ${path}/)`,
  };
}

function notDirConflict(path: string, type: FileType): Conflict {
  return {
    message: `${path} is a ${type === 'other' ? 'special file' : type}, not a directory`,
    fix: `move it away (mv ${path} ${path}.orig) or choose another mount.path`,
  };
}

function strandedConflict(bucket: MountedBucket, left: NonNullable<MountObserved['leftovers']>): Conflict {
  const byReason = new Map<string, string[]>();
  for (const file of left.stranded) {
    const reason = file.reason ?? 'stranded';
    byReason.set(reason, [...(byReason.get(reason) ?? []), `${file.where} (${formatBytes(file.size)})`]);
  }
  const lines = [...byReason].map(([reason, files]) => `${files.join(', ')}: ${reason}`);
  const more = left.strandedCount > left.stranded.length ? `; and ${left.strandedCount - left.stranded.length} more` : '';
  return {
    message: `${plural(left.strandedCount, 'file')} written through an earlier ${bucket.mount.backend} mount never reached bucket ${bucket.name}: ${lines.join('; ')}${more}`,
    fix: `copy what belongs in the bucket into it once mounted, then move the cache folder aside (or delete it) and run persist apply again; mounting now would leave them behind`,
  };
}

/** The mount decision, with what a stopped daemon left behind taken into account. */
export function diffMount(bucket: MountedBucket, observed: MountObserved): Decision | null {
  const decision = diffMountPoint(bucket, observed);
  const left = observed.leftovers;
  if (!left || !decision || decision.conflict) return decision;
  if (left.strandedCount > 0) {
    return { ...decision, action: 'conflict', reason: `${plural(left.strandedCount, 'unuploaded file')} stranded in ${bucket.mount.backend}'s cache`, changes: [], conflict: strandedConflict(bucket, left) };
  }
  if (left.uploadable > 0) return { ...decision, reason: `${decision.reason}; first uploads ${plural(left.uploadable, 'file')} a stopped ${bucket.mount.backend} left in its cache` };
  return decision;
}

function diffMountPoint(bucket: MountedBucket, observed: MountObserved): Decision | null {
  const path = bucket.mount.path;
  const backend = bucket.mount.backend;
  const base = { address: mountAddress(bucket.key), kind: 'mount' as const, phase: 'mount' as const };
  const mountChanges = [
    { field: 'backend', before: null, after: backend },
    { field: 'bucket', before: null, after: bucket.name },
  ];
  const conflict = (reason: string, detail: Conflict) => ({ ...base, action: 'conflict' as const, reason, changes: [], conflict: detail });

  if (backend === 'local') {
    switch (observed.state) {
      case 'missing':
        return { ...base, action: 'mount', reason: `directory ${path} does not exist; it will be created`, changes: [{ field: 'path', before: null, after: path }] };
      case 'not-dir':
        return conflict(`${path} is not a directory`, notDirConflict(path, observed.type));
      case 'dir':
        return null;
      case 'mounted':
        if (observed.backend === null) return null;
        return {
          ...base,
          action: 'replace',
          reason: `${observed.backend} has ${observed.source} mounted at ${path}; the local directory underneath stands in for the bucket`,
          changes: [
            { field: 'backend', before: observed.backend, after: 'local' },
            { field: 'bucket', before: observed.source, after: bucket.name },
          ],
        };
    }
  }

  switch (observed.state) {
    case 'missing':
      return { ...base, action: 'mount', reason: `nothing mounted at ${path}; the mount point will be created`, changes: mountChanges };
    case 'not-dir':
      return conflict(`${path} is not a directory`, notDirConflict(path, observed.type));
    case 'dir':
      if (observed.entries > 0) return conflict(`${path} is a non-empty local directory`, nonEmptyConflict(path, observed, backend));
      return { ...base, action: 'mount', reason: `nothing mounted at ${path}`, changes: mountChanges };
    case 'mounted': {
      if (observed.matches) {
        if (observed.alive) return null;
        return {
          ...base,
          action: 'remount',
          reason: `the ${backend} mount at ${path} is dead (${observed.deadReason ?? 'no answer'})`,
          changes: [{ field: 'state', before: 'dead', after: 'mounted' }],
        };
      }
      if (observed.backend === null) {
        return conflict(`another file system is mounted at ${path}`, {
          message: `${path} holds a ${observed.fsType} mount of ${observed.source} that persist did not make`,
          fix: `unmount it yourself (umount ${path}) if it is not needed, or choose another mount.path`,
        });
      }
      return {
        ...base,
        action: 'replace',
        reason: `${path} has ${observed.source} mounted with ${observed.backend}${observed.alive ? '' : ' (dead)'}, not ${bucket.name} with ${backend}`,
        changes: [
          { field: 'backend', before: observed.backend, after: backend },
          { field: 'bucket', before: observed.source, after: bucket.name },
        ],
      };
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves to the operation's value, or rejects after `ms`: a hung FUSE call must not hang apply. */
async function bounded<T>(what: string, ms: number, operation: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.max(0, Math.round(ms))} ms`)), Math.max(0, ms));
  });
  operation.catch(() => undefined); // a late failure after the timeout must not go unhandled
  try {
    return await Promise.race([operation, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * List the root, write a sentinel object, read it back and delete it. Returns null when all of
 * that worked, else what went wrong.
 */
async function readWriteProbe(host: Host, path: string, timeoutMs: number): Promise<string | null> {
  const listing = await host.probe(path, Math.max(1_000, timeoutMs));
  if (listing.state !== 'ok') return `listing ${path} failed: ${listing.state === 'dead' ? listing.reason : 'missing'}`;
  const sentinel = join(path, `.persist-probe-${host.pid()}-${randomBytes(6).toString('hex')}`);
  const content = `persist mount probe ${host.now().toISOString()}\n`;
  try {
    await bounded(`writing ${sentinel}`, timeoutMs, host.writeFile(sentinel, content));
    const back = await bounded(`reading ${sentinel}`, timeoutMs, host.readFile(sentinel));
    if (back.toString('utf8') !== content) return `reading back ${sentinel} gave different content`;
    await bounded(`deleting ${sentinel}`, timeoutMs, host.remove(sentinel));
    return null;
  } catch (error) {
    await bounded('cleanup', 2_000, host.remove(sentinel)).catch(() => undefined);
    return errorMessage(error);
  }
}

/** Lines the daemons write when they give up (s3fs `[CRT]`, rclone `Fatal error`/`Failed to ...`). */
const FATAL_LINE = /\[CRT\]|\[ERR\]|\bERROR\b|CRITICAL|Fatal error|Failed to /;

async function readLogSince(host: Host, logFile: string | undefined, offset: number): Promise<string> {
  if (!logFile) return '';
  try {
    return (await host.readFile(logFile)).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

/** The daemon's own explanation: its last error lines, else its last lines. */
function meaningfulLines(log: string, max = 5): string[] {
  const lines = log.split('\n').map((line) => line.trim()).filter(Boolean);
  const errors = lines.filter((line) => FATAL_LINE.test(line));
  return (errors.length ? errors : lines).slice(-max);
}

async function logSize(host: Host, logFile: string | undefined): Promise<number> {
  if (!logFile) return 0;
  return (await host.lstat(logFile))?.size ?? 0;
}

interface MountAttempt {
  bucket: MountedBucket;
  backend: Backend;
  ctx: BackendContext;
  report(message: string): void;
}

/** Mount the bucket on an absent or empty mount point and prove it works; undo everything on failure. */
async function mountFresh({ bucket, backend, ctx, report }: MountAttempt): Promise<string> {
  const { host } = ctx;
  const path = bucket.mount.path;
  await host.mkdir(ctx.runtimeDir, { mode: 0o700 });
  await host.chmod(ctx.runtimeDir, 0o700);

  let createdMountPoint = false;
  const info = await host.lstat(path);
  if (!info) {
    await host.mkdir(path);
    createdMountPoint = true;
  } else if (info.type !== 'dir') {
    throw new ActionError(`cannot mount at ${path}: it is a ${info.type}, not a directory`);
  } else {
    const names = await host.readdir(path);
    if (names.length > 0) {
      throw new ActionError(`refusing to mount over ${path}: it holds ${names.length} entries (${names.slice(0, 5).join(', ')}) that the mount would hide`);
    }
  }

  let command: MountCommand | undefined;
  let recovered = 0;
  const cleanUp = async (): Promise<void> => {
    const entry = mountAt(await host.mounts(), path);
    if (entry && backend.owns(entry)) await backend.unmount(bucket, path, ctx).catch(() => undefined);
    // A daemon that never showed in the mount table (or whose unmount refused) still runs: stop it.
    if (backend.stop) await backend.stop(bucket, path, ctx).catch(() => undefined);
    for (const file of command?.files ?? []) await host.remove(file.path).catch(() => undefined);
    if (createdMountPoint && !mountAt(await host.mounts(), path)) {
      const left = await host.readdir(path).catch(() => ['?']);
      if (left.length === 0) await host.remove(path).catch(() => undefined);
    }
  };

  try {
    command = await backend.mountCommand(bucket, ctx);
    for (const file of command.files) await host.writeFile(file.path, file.content, { mode: file.mode });
    // What a stopped daemon left unuploaded goes into the store before a new daemon takes the cache.
    if (backend.recover) recovered = await backend.recover(bucket, ctx, report);
    const logOffset = await logSize(host, command.logFile);
    report(`starting ${backend.name} for ${bucket.name}`);
    const started = await host.run(command.command, command.args, { env: command.env, timeoutMs: 90_000 });
    const failure = async (reason: string): Promise<ActionError> => {
      const log = meaningfulLines(await readLogSince(host, command?.logFile, logOffset));
      const stderr = meaningfulLines(started.stderr);
      const detail = [...stderr, ...log.filter((line) => !stderr.includes(line))];
      return new ActionError(
        `mounting ${bucket.name} at ${path} with ${backend.name} failed: ${reason}` +
          (detail.length ? `\n  ${backend.name} said:\n    ${detail.join('\n    ')}` : '') +
          (command?.logFile ? `\n  full log: ${command.logFile}` : ''),
      );
    };
    if (started.exitCode !== 0) {
      throw await failure(started.timedOut ? `${backend.name} did not return within 90 s` : `${backend.name} exited with code ${started.exitCode}`);
    }

    report(`waiting for ${path} to answer`);
    const deadline = host.now().getTime() + MOUNT_TIMEOUT_MS;
    let sawEntry = false;
    let probeFailures = 0;
    let lastProblem = `${path} did not appear in the mount table`;
    for (;;) {
      const entry = mountAt(await host.mounts(), path);
      if (entry && backend.matches(entry, bucket)) {
        sawEntry = true;
        const remaining = deadline - host.now().getTime();
        const problem = await readWriteProbe(host, path, Math.max(2_000, Math.min(PROBE_TIMEOUT_MS, remaining)));
        // The probe counts only if the same mount was there all along: s3fs tears a failed mount
        // down moments after it appears, and the probe would then pass on the bare directory.
        const after = mountAt(await host.mounts(), path);
        if (problem === null && after?.mountId === entry.mountId) {
          return `mounted ${bucket.name} at ${path} with ${backend.name}` + (recovered ? ` (first uploaded ${plural(recovered, 'file')} a stopped ${backend.name} had left in its cache)` : '');
        }
        if (problem === null) throw await failure('the mount appeared and vanished again');
        lastProblem = `the mount does not work: ${problem}`;
        if (++probeFailures >= PROBE_ATTEMPTS) throw await failure(lastProblem);
      } else if (entry && !backend.matches(entry, bucket)) {
        throw await failure(`${path} shows a ${entry.fsType} mount of ${entry.source}, not ${bucket.name}`);
      } else if (sawEntry) {
        // s3fs checks keys and bucket after forking; on failure its mount vanishes again.
        throw await failure('the mount appeared and vanished again');
      } else if (FATAL_LINE.test(await readLogSince(host, command.logFile, logOffset))) {
        throw await failure(lastProblem);
      }
      if (host.now().getTime() > deadline) throw await failure(`${lastProblem} within ${MOUNT_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_INTERVAL_MS);
    }
  } catch (error) {
    await cleanUp();
    const prefix = `mounting ${bucket.name} at ${path} with ${backend.name} failed`;
    if (error instanceof ActionError && error.message.startsWith(prefix)) throw error;
    throw new ActionError(`${prefix}: ${errorMessage(error)}`, { cause: error });
  }
}

/** Unmount whatever registered backend's mount is at the bucket's path. */
async function unmountExisting(bucket: MountedBucket, observed: Extract<MountObserved, { state: 'mounted' }>, host: Host): Promise<void> {
  if (observed.backend === null) throw new ActionError(`${bucket.mount.path} holds a ${observed.fsType} mount that persist did not make; not unmounting it`);
  // The other mount's runtime folder is keyed by its own bucket name at this path.
  const other: MountedBucket = { ...bucket, name: observed.source, mount: { ...bucket.mount, backend: observed.backend } };
  const otherBackend = getBackend(observed.backend);
  await otherBackend.unmount(other, bucket.mount.path, runtimeContext(host, other));
  if (otherBackend.stop) await otherBackend.stop(other, bucket.mount.path, runtimeContext(host, other));
  const still = mountAt(await host.mounts(), bucket.mount.path);
  if (still && still.fsType === observed.fsType && still.source === observed.source) {
    throw new ActionError(`${bucket.mount.path} is still mounted after unmounting ${observed.source}`);
  }
}

async function applyMount(bucket: MountedBucket, decision: Decision, observed: MountObserved, ctx: ApplyContext): Promise<ApplyOutcome> {
  const { host } = ctx;
  const backend = getBackend(bucket.mount.backend);
  if (observed.state === 'mounted') {
    ctx.report(`unmounting ${observed.source} (${observed.backend ?? observed.fsType}) from ${bucket.mount.path}`);
    await unmountExisting(bucket, observed, host);
  }
  if (!backend.fuse) {
    await host.mkdir(bucket.mount.path);
    return { summary: observed.state === 'mounted' ? `unmounted ${observed.source}; ${bucket.mount.path} is a local directory again` : `created ${bucket.mount.path}` };
  }
  const summary = await mountFresh({ bucket, backend, ctx: runtimeContext(host, bucket), report: ctx.report });
  return { summary: decision.action === 'remount' ? `re${summary}` : summary };
}

/**
 * The mount an action relies on, checked before each of its writes: the same mount (by id) must
 * still be at the path, so that a daemon that dies or is unmounted mid-action never lets a write
 * land in the bare mount point underneath. A `local` bucket has nothing that can vanish.
 */
function mountGuard(bucket: MountedBucket, observed: MountObserved): MountGuard | null {
  if (bucket.mount.backend === 'local' || observed.state !== 'mounted') return null;
  const { mountId } = observed;
  return { root: bucket.mount.path, holds: async (host) => mountAt(await host.mounts(), bucket.mount.path)?.mountId === mountId };
}

async function mountFacts(bucket: MountedBucket, observed: MountObserved, host: Host): Promise<Facts> {
  const facts: Facts = { backend: bucket.mount.backend, bucket: bucket.name, path: bucket.mount.path };
  if (bucket.mount.backend === 'local') return facts;
  facts.mounted = observed.state === 'mounted' ? `${observed.fsType} ${observed.source}` : null;
  if (observed.state === 'mounted') {
    facts.alive = observed.alive;
    if (observed.deadReason) facts.problem = observed.deadReason;
  }
  const backend = getBackend(bucket.mount.backend);
  if (observed.state === 'mounted' && observed.alive && observed.matches && backend.pendingWrites) {
    const pending = await backend.pendingWrites(bucket, runtimeContext(host, bucket)).catch(() => null);
    if (pending) {
      facts.uploadsPending = pending.count;
      facts.oldestPending = pending.oldestMs === null ? null : formatAge(pending.oldestMs, host.now());
    }
  }
  if (observed.leftovers) {
    facts.leftInCache = observed.leftovers.uploadable + observed.leftovers.strandedCount;
    if (observed.leftovers.strandedCount) facts.stranded = observed.leftovers.strandedCount;
  }
  return facts;
}

export const mountModule: ResourceModule<MountedBucket, MountObserved> = {
  kind: 'mount',
  phaseRank: { mount: 0 },
  // Only buckets with a mount: a bucket without one is reached through its S3 API (src/store/api.ts).
  resources: (env) => Object.fromEntries(Object.entries(env.buckets).filter((entry): entry is [string, MountedBucket] => isMounted(entry[1]))),
  needsBucket: () => null,
  readiness: { bucketOf: (bucket) => bucket.key, ready: mountReady, guard: mountGuard },
  localPaths: () => [],
  contains: () => [],
  observe: async (bucket, ctx) => ({ state: await observeMount(bucket, ctx.host), detail: null }),
  diff: (bucket, observed) => diffMount(bucket, observed),
  apply: (bucket, decision, seen, ctx) => applyMount(bucket, decision, seen.state, ctx),
  // Mounting an absent or dead mount hides nothing (a non-empty mount point is a conflict).
  unattended: (decision) => decision.action === 'mount' || decision.action === 'remount',
  facts: (bucket, observed, ctx) => mountFacts(bucket, observed, ctx.host),
};
