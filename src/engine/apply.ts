// The executor: runs a plan's actions in order. Each action re-observes its resource and re-diffs
// it first (the plan may be minutes old, or was predicted before its mount existed), so every
// action is idempotent. A failed action skips only the actions that depend on it. Afterwards every
// changed resource is observed again to verify it.
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { mountReady } from '../resources/mount/index.js';
import type { AnyModule } from '../resources/index.js';
import { listResources } from './observe.js';
import { SYMBOLS } from './plan.js';
import type { ApplyContext, ObserveContext, PlannedAction, PlanOptions } from './types.js';

export type ResultStatus = 'applied' | 'failed' | 'skipped';

export interface ActionResult {
  status: ResultStatus;
  /** What happened, one line. */
  message: string;
  notes: string[];
}

export interface ApplyReport {
  results: Map<string, ActionResult>;
  applied: number;
  failed: number;
  skipped: number;
}

/** `default`: listr2's live task list (a terminal); `lines`: one line per finished action (CI,
 * pipes); `silent`: nothing (--json). */
export type Renderer = 'default' | 'lines' | 'silent';

export interface ExecuteOptions {
  host: Host;
  env: ResolvedEnvironment;
  options: PlanOptions;
  renderer: Renderer;
  signal: AbortSignal;
  /** Where `lines` output goes. */
  print?: (line: string) => void;
}

const MARKS: Record<ResultStatus, string> = { applied: '✔', failed: '✖', skipped: '↓' };

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function actionTitle(action: PlannedAction, index: number): string {
  return `${index}. ${SYMBOLS[action.action]} ${action.address}  ${action.action}`;
}

export async function executePlan(actions: PlannedAction[], run: ExecuteOptions): Promise<ApplyReport> {
  const { host, env, options, signal } = run;
  const resources = new Map(listResources(env).map((e) => [e.address, e]));
  const results = new Map<string, ActionResult>();
  /** Actions that found their resource already as the spec wants it: they block nothing. */
  const upToDate = new Set<string>();

  async function observeMountReady(bucket: string): Promise<boolean> {
    const mount = resources.get(`mount.${bucket}`);
    if (!mount) return false;
    const ctx: ObserveContext = { host, env, mountReady: {} };
    return mountReady((await mount.module.observe(mount.resource, ctx)) as never);
  }

  async function freshDiff(module: AnyModule, resource: unknown): Promise<ReturnType<AnyModule['diff']>> {
    const ctx: ObserveContext = { host, env, mountReady: {} };
    if (module.kind !== 'mount') {
      // Probed again before every action: a daemon that died mid-apply must stop writes into its mount point.
      const bucket = module.bucketOf(resource);
      ctx.mountReady[bucket] = await observeMountReady(bucket);
    }
    return module.diff(resource, await module.observe(resource, ctx), options);
  }

  async function runOne(action: PlannedAction, report: (line: string) => void): Promise<ActionResult> {
    if (signal.aborted) return { status: 'skipped', message: 'interrupted before it started', notes: [] };
    const blocker = action.dependsOn.find((dep) => results.get(dep) && results.get(dep)?.status !== 'applied' && !upToDate.has(dep));
    if (blocker) return { status: 'skipped', message: `skipped: it depends on ${blocker}, which did not apply`, notes: [] };
    if (action.conflict) return { status: 'failed', message: `refused: ${action.conflict.message}; ${action.conflict.fix}`, notes: [] };
    const entry = resources.get(action.address);
    if (!entry) return { status: 'failed', message: `no such resource in the spec: ${action.address}`, notes: [] };
    try {
      const diff = await freshDiff(entry.module, entry.resource);
      if (!diff) {
        upToDate.add(action.address);
        return { status: 'skipped', message: 'already as the spec wants it (nothing to do)', notes: [] };
      }
      if (diff.conflict) return { status: 'failed', message: `refused: ${diff.conflict.message}; ${diff.conflict.fix}`, notes: [] };
      const fresh: PlannedAction = { ...diff, dependsOn: action.dependsOn };
      const ctx: ApplyContext = { host, env, options, report, signal };
      const outcome = await entry.module.apply(entry.resource, fresh, ctx);
      const changed = fresh.action !== action.action ? ` (re-checked: ${fresh.action} instead of ${action.action})` : '';
      return { status: 'applied', message: `${outcome.summary}${changed}`, notes: outcome.notes ?? [] };
    } catch (error) {
      return { status: 'failed', message: errorMessage(error), notes: [] };
    }
  }

  const { Listr } = await import('listr2');
  const tasks = new Listr(
    actions.map((action, i) => ({
      title: actionTitle(action, i + 1),
      task: async (_: unknown, task: { title: string; output: string; skip(message?: string): void }) => {
        const result = await runOne(action, (line) => (task.output = line));
        results.set(action.address, result);
        const line = `${actionTitle(action, i + 1)}: ${result.message}`;
        if (run.renderer === 'lines') run.print?.(`${MARKS[result.status]} ${line}\n`);
        if (result.status === 'failed') throw new Error(line);
        if (result.status === 'skipped') task.skip(line);
        else task.title = line;
      },
    })),
    {
      concurrent: false,
      exitOnError: false,
      // listr2's own SIGINT handler calls process.exit(127) in the middle of an action; the apply
      // command handles SIGINT/SIGTERM itself (finish the current action, skip the rest).
      registerSignalListeners: false,
      renderer: run.renderer === 'default' ? 'default' : 'silent',
      rendererOptions: { collapseErrors: false, collapseSkips: false, showErrorMessage: true },
    } as never,
  );
  await tasks.run();

  // Verify every changed resource against the spec once more.
  for (const action of actions) {
    const result = results.get(action.address);
    const entry = resources.get(action.address);
    if (result?.status !== 'applied' || !entry) continue;
    const diff = await freshDiff(entry.module, entry.resource);
    if (diff) {
      result.status = 'failed';
      result.message = `verification failed: after the action it still needs "${diff.action}" (${diff.reason})`;
    }
  }

  let applied = 0;
  let failed = 0;
  let skipped = 0;
  for (const action of actions) {
    const status = results.get(action.address)?.status ?? 'skipped';
    if (!results.has(action.address)) results.set(action.address, { status, message: 'not run', notes: [] });
    if (status === 'applied') applied++;
    else if (status === 'failed') failed++;
    else skipped++;
  }
  return { results, applied, failed, skipped };
}
