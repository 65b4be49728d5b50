// `persist shutdown`: what a container runs when it is told to stop. Push every sync and update
// every bundle (the executor, with only those actions: the same re-checks and safety rules as
// apply, conflicts reported and never forced), a dead mount remounted first (for rclone the
// remount uploads what the dead daemon left in its cache), wait until no mount's backend holds
// anything unuploaded, release the bucket lease, and unmount the mounts persist made (unless
// --keep-mounted). Exit 0 only when everything it was asked to save is in the store; --timeout
// bounds the whole, and past it the exit is 1 naming what is not saved.
//
// The saves need the machine's lease of their bucket (taken without waiting: a bucket whose lease
// another machine holds is not saved into, and says so; a `local` bucket's lease, a file in the
// folder its mount makes, right after that mount). The lease is released only when
// everything is saved; otherwise the next container waits for it to expire.
import { getBackend } from '../backends/registry.js';
import { executePlan } from '../engine/apply.js';
import { LockError } from '../errors.js';
import { bucketsActedOn, leasableBuckets, leaseTtlMs } from '../engine/lease-policy.js';
import type { LeaseKeeper } from '../engine/lease.js';
import { acquireLock } from '../engine/lock.js';
import type { ObservedResource } from '../engine/observe.js';
import type { PlannedAction } from '../engine/types.js';
import { mountAt } from '../host/mountinfo.js';
import { PROBE_TIMEOUT_MS } from '../resources/mount/index.js';
import { bucketRuntimeDir, stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { linesView, silentView } from '../output/apply-view.js';
import { errorMessage, formatDuration, plural } from '../output/format.js';
import { leaseKept, leaseNotReleased, leaseReleased } from '../output/lease-view.js';
import { renderShutdown, shutdownItemLine, shutdownJson, shutdownOk, type ShutdownItem, type ShutdownReport } from '../output/shutdown-view.js';
import { makeStyle } from '../output/style.js';
import { parseDuration } from '../spec/duration.js';
import { isMounted, type MountedBucket, type ResolvedEnvironment } from '../spec/types.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface ShutdownCommandOptions extends SpecOptions {
  timeout?: string;
  keepMounted?: boolean;
}

/** The only actions shutdown carries out: saving local state into the store. */
const SAVING = new Set(['push', 'update']);
/** The pause before saves a passing cause stopped (a store outage, a busy writer) are tried again. */
const RETRY_PAUSE_MS = 2_000;

/**
 * Release this machine's lease on each bucket (docs/architecture.md, the lease), once everything
 * is saved and before unmounting. Called only when every save succeeded: a machine that could not
 * save keeps its lease until it expires.
 */
export async function releaseBucketLeases(host: Host, env: ResolvedEnvironment): Promise<ShutdownItem[]> {
  if (leasableBuckets(env).length === 0) return [];
  const { releaseLease } = await import('../engine/lease.js');
  // A lease that cannot be released (the store stopped answering after the last save) loses
  // nothing: it is kept, and expires after its time to live.
  const kept: ShutdownItem[] = [];
  const released = await releaseLease(host, env, (where, message) => kept.push({ address: 'lease', status: 'kept', message: leaseNotReleased(where, message) }));
  return [...released.map((where): ShutdownItem => ({ address: 'lease', status: 'saved', message: leaseReleased(where) })), ...kept];
}

class Deadline {
  constructor(
    private readonly host: Host,
    readonly at: number,
  ) {}
  remaining(): number {
    return this.at - this.host.now().getTime();
  }
  passed(): boolean {
    return this.remaining() <= 0;
  }
  /** The operation's value, or 'timeout' once the deadline passes (the operation is abandoned). */
  async race<T>(operation: Promise<T>): Promise<T | 'timeout'> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, this.remaining()));
    });
    operation.catch(() => undefined);
    try {
      return await Promise.race([operation, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

export default async function shutdown(opts: ShutdownCommandOptions, io: CommandIO): Promise<number> {
  const timeoutMs = parseDuration(opts.timeout ?? '60s', '--timeout');
  const style = makeStyle(io.color);
  const host = makeHost(io);
  const started = host.now().getTime();
  const deadline = new Deadline(host, started + timeoutMs);
  const env = await loadSpec(opts, io);
  const items: ShutdownItem[] = [];
  const say = (item: ShutdownItem) => {
    items.push(item);
    if (!opts.json) io.out(`${shutdownItemLine(item, style)}\n`);
  };
  if (!opts.json) io.out(`${header(env, 'shutdown')}\n\n`);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let timedOut = false;
  let keeper = null as LeaseKeeper | null; // assigned in a closure (TypeScript would narrow a plain null)
  const lostLeases = new Map<string, string>();
  try {
    // 1. Save: push every sync, update every bundle. What a passing cause stopped (the store
    // unreachable or answering 5xx: StoreError.transient; a file that changed at every read, a
    // database locked: ApplyOutcome.notSaved) is tried again, RETRY_PAUSE_MS apart, while the
    // timeout leaves room: a container stopped during a network blip or a busy write still saves.
    /** Addresses tried again this round (null: the first round, every sync and bundle), with why they were not saved yet. */
    let retrying: Map<string, string> | null = null;
    for (;;) {
      const again = new Map<string, string>();
      /** Of `again`: saves that ran but left files out (ApplyOutcome.notSaved). */
      const incomplete = new Set<string>();
      const canRetry = () => deadline.remaining() > RETRY_PAUSE_MS + 1_000;
      /** Not saved: tried again later when `transient` and there is time, else said. */
      const notSaved = (address: string, message: string, transient: boolean) => {
        if (transient && canRetry()) again.set(address, message);
        else say({ address, status: 'unsaved', message });
      };
      const inRound = (address: string) => retrying === null || retrying.has(address);
      const planned = await deadline.race(computePlan(makeHost(io, { readOnly: true }), env, { allowShrink: false }, []));
      if (planned === 'timeout') {
        timedOut = true;
        if (retrying === null) say({ address: 'plan', status: 'unsaved', message: `could not even look at the machine within ${formatDuration(timeoutMs)}` });
        else for (const [address, message] of retrying) say({ address, status: 'unsaved', message });
        break;
      }
      let saving: PlannedAction[] = [];
      /** Per bucket, the planned action of the resource that makes it ready (its mount), with that resource's observation. */
      const mountActions = new Map<string, { action: PlannedAction; observed: ObservedResource }>();
      for (const action of planned.actions) {
        const observed = planned.observation.resources.find((r) => r.address === action.address);
        if (observed?.module.readiness) mountActions.set(observed.module.readiness.bucketOf(observed.resource), { action, observed });
      }
      /** A bucket whose mount is a conflict (a file at the mount path, say): nothing can be saved into it until a person acts. */
      const blockedMount = (key: string | null) => {
        const mount = key === null ? undefined : mountActions.get(key);
        return mount?.action.conflict ? mount : undefined;
      };
      for (const observed of planned.observation.resources) {
        if ((observed.module.kind !== 'sync' && observed.module.kind !== 'bundle') || !inRound(observed.address)) continue;
        const action = planned.actions.find((a) => a.address === observed.address);
        // Nothing to do is not always saved: a module may know of work no save can hold yet.
        const unsavedWork = action ? null : (observed.module.unsavedWork?.(observed.resource, observed.seen.state) ?? null);
        const nothingYet = action ? null : (observed.module.unsaved?.(observed.resource, observed.seen.state) ?? null);
        if (unsavedWork) say({ address: observed.address, status: 'unsaved', message: `not saved: ${unsavedWork}` });
        else if (nothingYet) say({ address: observed.address, status: 'saved', message: `nothing to save (${nothingYet})` });
        else if (!action) say({ address: observed.address, status: 'saved', message: 'already in the store' });
        else if (action.conflict) notSaved(action.address, `not saved: ${action.conflict.message}. ${action.conflict.fix}`, observed.unobserved?.transient === true);
        else if (SAVING.has(action.action)) {
          const blocked = blockedMount(observed.module.needsBucket(observed.resource));
          if (blocked) notSaved(action.address, `not saved: ${blocked.action.address} is a conflict: ${blocked.action.conflict!.message}. ${blocked.action.conflict!.fix}`, blocked.observed.unobserved?.transient === true);
          else saving.push(action);
        }
        else say({ address: action.address, status: 'saved', message: `nothing here to save (it needs ${action.action}: ${action.reason})` });
      }
      // The saves need their bucket's lease (taken now, without waiting). A `local` bucket's lease
      // is a file in its folder, which its mount makes: when this shutdown mounts it, the lease
      // is taken after that, before the bucket's first save (as apply does: engine/lease-policy.ts).
      const bucketOfAction = (action: PlannedAction) => bucketsActedOn([action], planned.observation)[0] ?? '';
      const leased = bucketsActedOn(saving, planned.observation);
      const leasedAfterMount = new Set(leased.filter((key) => env.buckets[key]?.mount?.backend === 'local' && mountActions.get(key)?.action.action === 'mount'));
      const leaseKeeper = async () => {
        if (!keeper) {
          const { LeaseKeeper } = await import('../engine/lease.js');
          keeper = new LeaseKeeper(host, { onLost: (bucket, message) => (lostLeases.set(bucket, message), controller.abort()) });
        }
        return keeper;
      };
      const leasedNow = leased.filter((key) => !leasedAfterMount.has(key));
      if (leasedNow.length) {
        const taker = await leaseKeeper();
        const refused = await taker.keep(leasedNow.map((key) => env.buckets[key]!));
        taker.start();
        saving = saving.filter((action) => {
          const why = refused.get(bucketOfAction(action));
          if (why) notSaved(action.address, `not saved: ${why.message}`, !why.held);
          return !why;
        });
      }
      // A dead mount comes back first (a remount of rclone uploads what the dead daemon left in its
      // cache), and so does a missing mount that a save needs.
      const needed = new Set(bucketsActedOn(saving, planned.observation));
      const mounting = [...mountActions]
        .filter(([key, { action }]) => action.action === 'remount' || (action.action === 'mount' && needed.has(key)))
        .map(([, { action }]) => action);
      saving = [...mounting, ...saving];
      /** Before a save into a bucket this shutdown mounted: its lease (a refusal fails the save, naming why). */
      const leaseAfterMount = async (action: PlannedAction) => {
        const key = bucketOfAction(action);
        if (!leasedAfterMount.has(key)) return;
        const taker = await leaseKeeper();
        const why = (await taker.keep([env.buckets[key]!])).get(key);
        taker.start();
        if (why) throw new LockError(why.message);
      };
      if (saving.length) {
        const release = await deadline.race(acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment, command: 'shutdown' }, Math.max(0, deadline.remaining())));
        if (release === 'timeout') {
          timedOut = true;
          for (const action of saving) say({ address: action.address, status: 'unsaved', message: 'not saved: another persist held the apply lock until the timeout' });
        } else {
          try {
            const timer = setTimeout(() => controller.abort(), Math.max(0, deadline.remaining()));
            const view = opts.json ? silentView() : linesView(io.out);
            const report = await deadline.race(
              executePlan(saving, { host, env, options: { allowShrink: false }, view, signal: controller.signal, deadlineMs: deadline.at, beforeAction: leaseAfterMount }),
            );
            clearTimeout(timer);
            if (report === 'timeout') timedOut = true;
            for (const action of saving) {
              const result = report === 'timeout' ? undefined : report.results.get(action.address);
              const lost = lostLeases.get(bucketsActedOn([action], planned.observation)[0] ?? '');
              if (result?.status === 'applied' && result.notSaved?.length) {
                const left = result.notSaved;
                incomplete.add(action.address);
                notSaved(action.address, `${action.action} done, but not all of it is in the store: ${left.map((entry) => entry.message).join('; ')}`, left.every((entry) => entry.transient));
              } else if (result?.status === 'applied') say({ address: action.address, status: 'saved', message: `${action.action}: ${result.message}` });
              else if (lost) say({ address: action.address, status: 'unsaved', message: `${action.action} not done: ${lost}` });
              else if (result?.status === 'skipped' && /already as the spec wants/.test(result.message)) say({ address: action.address, status: 'saved', message: 'already in the store' });
              else notSaved(action.address, `${action.action} not done: ${result?.message ?? `still running at the timeout (${formatDuration(timeoutMs)})`}`, result?.transient === true);
            }
          } finally {
            if (typeof release === 'function') await release();
          }
        }
      }
      if (again.size === 0 || controller.signal.aborted) {
        for (const [address, message] of again) say({ address, status: 'unsaved', message });
        break;
      }
      if (!opts.json) {
        const retry = (addresses: string[], why: string) =>
          io.out(`${addresses.length === 1 ? '1 save' : `${addresses.length} saves`} ${why} (${addresses.join(', ')}): trying again in ${formatDuration(RETRY_PAUSE_MS)}\n`);
        const stopped = [...again.keys()].filter((address) => !incomplete.has(address));
        const leftOut = [...again.keys()].filter((address) => incomplete.has(address));
        if (stopped.length) retry(stopped, 'stopped by the store');
        if (leftOut.length) retry(leftOut, 'left files out of the store');
      }
      await host.sleep(RETRY_PAUSE_MS);
      retrying = again;
    }

    // 2. Wait until every mount's backend has put into the store all that was written before this
    // wait (what the agent wrote through links too, a file it keeps rewriting included: the store
    // must hold its content of then or later).
    const mounted: { key: string; backendName: string }[] = [];
    /** Mounts whose backend still holds unuploaded files: unmounting would strand them. */
    const unsafeToUnmount = new Set<string>();
    const mounts = await host.mounts();
    for (const [key, bucket] of Object.entries(env.buckets)) {
      if (!isMounted(bucket)) continue; // an API bucket: every write was whole and in the store when it returned
      const backend = getBackend(bucket.mount.backend);
      const entry = mountAt(mounts, bucket.mount.path);
      if (!backend.fuse || !entry || !backend.matches(entry, bucket)) continue;
      mounted.push({ key, backendName: backend.name });
      if (!backend.flush) continue;
      if (deadline.passed()) {
        timedOut = true;
        say({ address: `mount.${key}`, status: 'unsaved', message: `not checked: the timeout (${formatDuration(timeoutMs)}) passed first` });
        continue;
      }
      // Bounded by the flush itself (so that its own reason, naming the files, is what is shown).
      const ctx = { host, runtimeDir: bucketRuntimeDir(host.env(), bucket), processEnv: host.env() };
      const flushed = await backend
        .flush(bucket, ctx, { timeoutMs: Math.max(500, deadline.remaining() - 300), everyEarlierWrite: true })
        .then((report) => report, (error: unknown) => errorMessage(error));
      if (typeof flushed === 'string') {
        if (deadline.passed()) timedOut = true;
        say({ address: `mount.${key}`, status: 'unsaved', message: flushed });
        unsafeToUnmount.add(key);
      }
      else say({ address: `mount.${key}`, status: 'saved', message: `${backend.name} holds nothing unuploaded${flushed.verified ? `: ${plural(flushed.verified, 'file')} it held checked in the store` : ''}` });
    }

    // 3. Release the lease, only when everything is saved.
    await keeper?.stop();
    if (items.every((item) => item.status === 'saved')) for (const item of await releaseBucketLeases(host, env)) say(item);
    else for (const key of keeper?.heldBuckets() ?? []) say({ address: 'lease', status: 'kept', message: leaseKept(`of bucket ${key}`, leaseTtlMs(env.buckets[key]!)) });

    // 4. Unmount what persist mounted (the drivers flush first and refuse to strand writes).
    for (const { key, backendName } of mounted) {
      const bucket = env.buckets[key] as MountedBucket;
      if (opts.keepMounted) {
        say({ address: `mount.${key}`, status: 'kept', message: `left mounted at ${bucket.mount.path} (--keep-mounted)` });
        continue;
      }
      if (unsafeToUnmount.has(key)) {
        // A dead daemon uploads nothing more: what its cache holds waits for the next mount.
        const probe = await host.probe(bucket.mount.path, Math.max(500, Math.min(PROBE_TIMEOUT_MS, deadline.remaining())));
        const why =
          probe.state === 'ok'
            ? `${backendName} still holds files the store does not have, and keeps uploading them`
            : `${backendName} does not answer there (${probe.state === 'dead' ? probe.reason : 'the mount point is gone'}), so nothing is uploading; its cache may hold files the store does not have: the next apply or shutdown remounts and uploads them`;
        say({ address: `mount.${key}`, status: 'kept', message: `left mounted at ${bucket.mount.path}: ${why}` });
        continue;
      }
      const backend = getBackend(bucket.mount.backend);
      const ctx = { host, runtimeDir: bucketRuntimeDir(host.env(), bucket), processEnv: host.env() };
      const done = await deadline.race(backend.unmount(bucket, bucket.mount.path, ctx).then(() => null, (error: unknown) => errorMessage(error)));
      if (done === 'timeout') {
        timedOut = true;
        say({ address: `mount.${key}`, status: 'failed', message: `still unmounting ${bucket.mount.path} at the timeout` });
      } else if (done !== null) say({ address: `mount.${key}`, status: 'failed', message: `not unmounted: ${done}` });
      else say({ address: `mount.${key}`, status: 'unmounted', message: `unmounted ${bucket.mount.path} (${backendName})` });
    }
  } finally {
    await keeper?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const report: ShutdownReport = { environment: env.environment, items, elapsedMs: host.now().getTime() - started, timeoutMs, timedOut };
  if (opts.json) io.out(`${JSON.stringify(shutdownJson(report), null, 2)}\n`);
  else io.out(`\n${renderShutdown(report)}`);
  return shutdownOk(report) ? 0 : 1;
}
