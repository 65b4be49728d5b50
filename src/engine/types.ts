// Shapes shared by the resource modules (observe, diff, apply) and the engine (plan, apply).
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';

export type ResourceKind = 'mount' | 'link' | 'bundle' | 'sync' | 'file';

/** What an action does; the plan prints it after the address. */
export type ActionName =
  | 'mount'
  | 'remount'
  | 'replace'
  | 'create'
  | 'adopt'
  | 'relink'
  | 'restore'
  | 'update'
  | 'push'
  | 'conflict';

/** Execution phases, in order: mounts, restores (bundles, syncs, files), links, pushes (syncs, then bundles). */
export type Phase = 'mount' | 'restore' | 'link' | 'push';

/** One changed value shown under an action: `field: before -> after`. */
export interface Change {
  field: string;
  before: string | null;
  after: string | null;
  /** Shown as (sensitive) whatever the values. */
  sensitive?: boolean;
}

export interface Conflict {
  /** What is wrong, e.g. `/root/clawd/memory is a regular file`. */
  message: string;
  /** What to do about it. */
  fix: string;
  /** A flag that lets the action go ahead anyway (e.g. `--allow-shrink`), if any. */
  overrideFlag?: string;
}

export interface PlannedAction {
  /** `mount.data`, `link.memory`, ... */
  address: string;
  kind: ResourceKind;
  action: ActionName;
  phase: Phase;
  /** One line: why this action. */
  reason: string;
  changes: Change[];
  /** Set when the machine is in a state persist will not change without the user. */
  conflict?: Conflict;
  /** Warnings shown under the action (e.g. a linked path tracked by a bundled repo). */
  warnings?: string[];
  /** Addresses of resources this action depends on (filled by the engine). */
  dependsOn: string[];
}

/** Options that change what diff decides. */
export interface PlanOptions {
  /** Let a sync push delete more than maxDeleteRatio of its mirror. */
  allowShrink: boolean;
}

/** State shared by the observation of one environment. */
export interface ObserveContext {
  host: Host;
  env: ResolvedEnvironment;
  /**
   * Whether each bucket's mount can be looked into now (mounted and healthy, or local).
   * When false, what lies in the mount is unknown until the mount action has run.
   */
  mountReady: Record<string, boolean>;
}

/**
 * One module per resource kind. `observe` reads the live state through the host (and must not
 * write); `diff` is pure; `apply` carries out one action, re-checking its precondition first.
 * `Observed` must be JSON-serialisable: its hash is the resource's fingerprint in a saved plan.
 */
export interface ResourceModule<R, Observed> {
  kind: ResourceKind;
  /** The resources of this kind in an environment, by name. */
  resources(env: ResolvedEnvironment): Record<string, R>;
  /** Bucket key the resource lives in (its mount is a dependency). */
  bucketOf(resource: R): string;
  /** Local paths the resource writes (a link inside a bundled repo waits for the repo's restore). */
  localPaths(resource: R): string[];
  observe(resource: R, ctx: ObserveContext): Promise<Observed>;
  diff(resource: R, observed: Observed, options: PlanOptions): Omit<PlannedAction, 'dependsOn'> | null;
  apply(resource: R, action: PlannedAction, ctx: ApplyContext): Promise<ApplyOutcome>;
}

export interface ApplyContext {
  host: Host;
  env: ResolvedEnvironment;
  options: PlanOptions;
  /** Progress for the task list (one short line). */
  report(message: string): void;
  /** Set when the user interrupted: finish or roll back the current step, then stop. */
  signal: AbortSignal;
}

export interface ApplyOutcome {
  /** Short result shown after the action, e.g. `copied 1,234 files`. */
  summary: string;
  /** Anything the user should know (a conflict copy written beside a file...). */
  notes?: string[];
}
