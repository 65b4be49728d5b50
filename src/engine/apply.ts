// The executor: runs a plan's actions in order. Right before each action it observes the
// resource again (the plan may be minutes old, or was predicted before its mount existed), and
// the bucket-readying resource of its bucket with it: this is the only re-check, and the module
// acts on the observation and decision made here. An action whose bucket is not mounted and
// healthy at that moment is refused, so nothing is ever written under a bare mount point. A
// failed action skips only the actions that depend on it. Afterwards every changed resource is
// observed once more to verify it. Progress goes to a view (src/output/apply-view.ts).
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { guardedHost } from '../host/wrappers.js';
import { errorMessage, formatDuration, plural } from '../output/format.js';
import { storesFor } from '../store/index.js';
import { listResources, observeContext, observeEntry, recordReadiness, type Entry, type ObservedResource } from './observe.js';
import { SYMBOLS } from './plan.js';
import { ActionError, isTransientStoreFailure, StoreError } from '../errors.js';
import type { ActionName, ApplyContext, ApplyOutcome, Decision, NotSaved, ObserveContext, PlannedAction, PlanOptions } from './types.js';

export type ResultStatus = 'applied' | 'failed' | 'skipped';

export interface ActionResult {
  status: ResultStatus;
  /** What happened, one line. */
  message: string;
  notes: string[];
  /** The module verified its own result in the store (see ApplyOutcome.verifiedInStore). */
  verifiedInStore?: boolean;
  /** The action that still follows this one by design (see ApplyOutcome.followedBy). */
  followedBy?: string;
  /** What it left out of the store although it ran (see ApplyOutcome.notSaved). */
  notSaved?: NotSaved[];
  /** The action carried out, where the re-check right before it decided another than the plan's. */
  rechecked?: ActionName;
  /** It failed on a passing store outage (isTransientStoreFailure): the same action may succeed soon. */
  transient?: boolean;
}

export interface ApplyReport {
  results: Map<string, ActionResult>;
  applied: number;
  failed: number;
  skipped: number;
}

/** One action as a view runs it: a title, and a run that reports progress lines. */
export interface ActionTask {
  title: string;
  run(report: (line: string) => void): Promise<ActionResult>;
}

/** How an apply shows its progress (a live task list, one line per action, or nothing). */
export interface ApplyView {
  /** Run the tasks one after the other, showing each; never throws for a failed task. */
  run(tasks: ActionTask[]): Promise<void>;
}

export interface ExecuteOptions {
  host: Host;
  env: ResolvedEnvironment;
  options: PlanOptions;
  view: ApplyView;
  signal: AbortSignal;
  /** watch: carry out only decisions the module says may run unattended (re-judged on the fresh decision). */
  unattendedOnly?: boolean;
  /** shutdown: the time (ms since the epoch) by which every wait for the store must end. */
  deadlineMs?: number;
  /** Runs right before an action (apply: takes the lease of its bucket); a throw fails the action. */
  beforeAction?: (action: PlannedAction) => Promise<void>;
}

/** How long an action waits for its bucket's backend to have uploaded what it wrote. */
export const DURABLE_WAIT_MS = 120_000;

export function actionTitle(action: PlannedAction, index: number): string {
  return `${index}. ${SYMBOLS[action.action]} ${action.address}  ${action.action}`;
}

interface Recheck {
  observed: ObservedResource;
  ctx: ObserveContext;
  /** The bucket-readying resource's observation, when the resource needs a bucket. */
  maker?: ObservedResource;
  /** The bucket the resource needs, and whether it is ready now; null when it needs none. */
  bucket: { key: string; ready: boolean } | null;
}

/** Observe a resource now, with the resource that makes its bucket ready observed first. */
async function observeNow(entry: Entry, byAddress: Map<string, Entry>, host: Host, env: ResolvedEnvironment, options: PlanOptions): Promise<Recheck> {
  const ctx = observeContext(host, env);
  const key = entry.module.needsBucket(entry.resource);
  const makerEntry = key !== null && entry.ref.mount ? byAddress.get(entry.ref.mount) : undefined;
  const maker = makerEntry ? await observeEntry(makerEntry, ctx, options) : undefined;
  if (maker) recordReadiness(ctx, maker);
  const bucket = key === null ? null : { key, ready: ctx.mountReady[key] === true };
  return { observed: await observeEntry(entry, ctx, options, maker), ctx, bucket, ...(maker ? { maker } : {}) };
}

export type ActionContext = Omit<ApplyContext, 'store'>;

interface ActionRun {
  recheck(entry: Entry): Promise<Recheck>;
  byAddress: Map<string, Entry>;
  /** Addresses planned in this run (a resource whose mount is among them was decided before it). */
  planned: Set<string>;
  unattendedOnly: boolean;
  deadlineMs?: number;
}

/**
 * Carry out one planned action: observe now, decide again, refuse what is unsafe at this moment
 * (a conflict, a bucket not mounted, a resource that changed since the plan), then hand the
 * module the observation and the decision. Throws ActionError when refused.
 */
export async function applyAction(
  action: PlannedAction,
  ctx: ActionContext,
  run?: ActionRun,
): Promise<{ decision: Decision; outcome: ApplyOutcome } | 'up-to-date' | 'needs-a-person'> {
  const byAddress = run?.byAddress ?? new Map<string, Entry>(listResources(ctx.env).map((e) => [e.address, e]));
  const recheck = run?.recheck ?? ((entry: Entry) => observeNow(entry, byAddress, ctx.host, ctx.env, ctx.options));
  if (action.conflict) throw new ActionError(`refused: ${action.conflict.message}. ${action.conflict.fix}`);
  const entry = byAddress.get(action.address);
  if (!entry) throw new ActionError(`no such resource in the spec: ${action.address}`);
  const { observed, ctx: observeCtx, bucket, maker } = await recheck(entry);
  const decision = observed.diff;
  if (!decision) return 'up-to-date';
  if (decision.conflict) throw new ActionError(`refused: ${decision.conflict.message}. ${decision.conflict.fix}`, observed.unobserved ? { cause: observed.unobserved } : undefined);
  if (bucket && !bucket.ready) {
    const mounted = ctx.env.buckets[bucket.key]?.mount;
    // A mount found dead here died after the plan: the next plan remounts it, so this may pass (shutdown tries again).
    const died = maker?.diff?.action === 'remount' ? { cause: new StoreError(`${maker.address} died after the plan`, 'The next plan remounts it.', true) } : undefined;
    throw new ActionError(`${maker?.address ?? `bucket ${bucket.key}`} is not mounted; nothing written into ${mounted ? mounted.path : observeCtx.store(bucket.key).where('')}`, died);
  }
  const predicted = entry.ref.mount !== undefined && (run?.planned.has(entry.ref.mount) ?? false);
  if (decision.action !== action.action && !predicted) {
    throw new ActionError(`${action.address} changed since the plan: it now needs ${decision.action} (${decision.reason}), not ${action.action}; run persist plan again`);
  }
  if (run?.unattendedOnly && !entry.module.unattended(decision, observed.seen.state)) return 'needs-a-person';
  // Every write under the mount is allowed only while the mount checked here is still there.
  const guard = maker?.module.readiness?.guard(maker.resource, maker.seen.state) ?? null;
  const host = guard
    ? guardedHost(ctx.host, guard.root, () => guard.holds(ctx.host), () => new ActionError(`${maker!.address} went away during the action; stopped before writing into ${guard.root}`))
    : ctx.host;
  const store = guard ? storesFor(ctx.env, host) : observeCtx.store;
  const outcome = await entry.module.apply(entry.resource, decision, observed.seen, { ...ctx, host, store });
  // Durable: an action that wrote into a bucket counts only once its bytes are in the store.
  if (bucket) {
    const budget = run?.deadlineMs === undefined ? DURABLE_WAIT_MS : Math.min(DURABLE_WAIT_MS, run.deadlineMs - ctx.host.now().getTime());
    ctx.report(`waiting until ${bucket.key}'s writes are in the store`);
    let flushed: Awaited<ReturnType<ReturnType<ObserveContext['store']>['flush']>>;
    try {
      flushed = await store(bucket.key).flush(Math.max(1_000, budget));
    } catch (error) {
      throw new ActionError(`done locally, but not yet in the store: ${errorMessage(error)}`, { cause: error });
    }
    if (flushed) {
      const checked = flushed.verified > 0 ? `: ${plural(flushed.verified, 'uploaded file')} checked there` : '';
      const summary = `${outcome.summary} (in the store after ${formatDuration(flushed.waitedMs)}${checked})`;
      return { decision, outcome: { ...outcome, summary } };
    }
  }
  return { decision, outcome };
}

export async function executePlan(actions: PlannedAction[], run: ExecuteOptions): Promise<ApplyReport> {
  const { host, env, options, signal } = run;
  const entries = listResources(env);
  const byAddress = new Map<string, Entry>(entries.map((e) => [e.address, e]));
  const results = new Map<string, ActionResult>();
  /** Actions that found their resource already as the spec wants it: they block nothing. */
  const upToDate = new Set<string>();

  const recheck = (entry: Entry) => observeNow(entry, byAddress, host, env, options);

  /** Resources whose bucket is made ready by an action of this run: their decision was predicted. */
  const planned = new Set<string>(actions.map((a) => a.address));

  async function runOne(action: PlannedAction, report: (line: string) => void): Promise<ActionResult> {
    const result = (status: ResultStatus, message: string, notes: string[] = []): ActionResult => ({ status, message, notes });
    if (signal.aborted) return result('skipped', 'interrupted before it started');
    const blocker = action.dependsOn.find((dep) => results.get(dep) && results.get(dep)?.status !== 'applied' && !upToDate.has(dep));
    if (blocker) return result('skipped', `skipped: it depends on ${blocker}, which did not apply`);
    try {
      await run.beforeAction?.(action);
      const done = await applyAction(action, { host, env, options, report, signal }, { recheck, byAddress, planned, unattendedOnly: run.unattendedOnly === true, ...(run.deadlineMs === undefined ? {} : { deadlineMs: run.deadlineMs }) });
      if (done === 'up-to-date') {
        upToDate.add(action.address);
        return result('skipped', 'already as the spec wants it (nothing to do)');
      }
      if (done === 'needs-a-person') return result('skipped', 'needs a person (not applied): it changed since the plan');
      const changed = done.decision.action !== action.action ? ` (re-checked: ${done.decision.action} instead of ${action.action})` : '';
      const applied = result('applied', `${done.outcome.summary}${changed}`, done.outcome.notes ?? []);
      if (done.outcome.verifiedInStore) applied.verifiedInStore = true;
      if (done.decision.action !== action.action) applied.rechecked = done.decision.action;
      if (done.outcome.followedBy) applied.followedBy = done.outcome.followedBy;
      if (done.outcome.notSaved?.length) applied.notSaved = done.outcome.notSaved;
      return applied;
    } catch (error) {
      const failed = result('failed', errorMessage(error));
      if (isTransientStoreFailure(error)) failed.transient = true;
      return failed;
    }
  }

  await run.view.run(
    actions.map((action, i) => ({
      title: actionTitle(action, i + 1),
      run: async (report) => {
        const result = await runOne(action, report);
        results.set(action.address, result);
        return result;
      },
    })),
  );

  // Verify every changed resource against the spec once more.
  for (const action of actions) {
    const result = results.get(action.address);
    const entry = byAddress.get(action.address);
    if (result?.status !== 'applied' || !entry) continue;
    const { observed } = await recheck(entry);
    const done = result.rechecked ?? action.action;
    if (observed.diff && result.verifiedInStore && observed.diff.action === done && !observed.diff.conflict) {
      result.notes.push(`it changed again since it was read (${observed.diff.reason}); the next ${done} takes the newer state`);
    } else if (observed.diff && result.followedBy === observed.diff.action && !observed.diff.conflict) {
      result.notes.push(`it still needs "${observed.diff.action}" (${observed.diff.reason}): the next apply or watch round does it`);
    } else if (observed.unobserved) {
      result.status = 'failed';
      result.message = `verification failed: ${observed.diff!.reason}. ${observed.unobserved.fix}`;
    } else if (observed.diff) {
      result.status = 'failed';
      result.message = `verification failed: after the action it still needs "${observed.diff.action}" (${observed.diff.reason})`;
    }
  }

  const counts = { applied: 0, failed: 0, skipped: 0 };
  for (const action of actions) {
    if (!results.has(action.address)) results.set(action.address, { status: 'skipped', message: 'not run', notes: [] });
    counts[results.get(action.address)!.status]++;
  }
  return { results, ...counts };
}
