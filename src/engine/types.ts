// The contract between the kind-blind engine and the resource kinds. The engine knows only
// generic actions and phases; everything a kind means (which phase its actions run in, which
// bucket it needs, which local paths it holds, what status shows, what may run unattended) is
// declared on its module (src/resources/<kind>/index.ts), and a module that leaves one out does
// not compile.
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import type { Store } from '../store/types.js';
import type { Address } from './address.js';

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

/** Execution phases, in order: mounts, restores, links, pushes. */
export const PHASES = ['mount', 'restore', 'link', 'push'] as const;
export type Phase = (typeof PHASES)[number];

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

/** What a module's diff decides for one resource. */
export interface Decision {
  /** `mount.data`, `link.memory`, ... */
  address: Address;
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
  /** A few words shown after the action on its line, e.g. `local files kept aside: 3 differ`. */
  note?: string;
  /** The files the action moves (names, never contents), by what happens to each; plan shows a few, --json all. */
  files?: FileList[];
}

/** What happens to a list of files: restored, pushed as new or changed, deleted from the mirror, ... */
export type FileFate = 'restore' | 'add' | 'change' | 'delete' | 'keep' | 'compare';

export interface FileList {
  fate: FileFate;
  paths: string[];
}

export interface PlannedAction extends Decision {
  /** Addresses of resources this action depends on (filled by the engine). */
  dependsOn: Address[];
}

/** Options that change what diff decides. */
export interface PlanOptions {
  /** Let a sync push delete more than maxDeleteRatio of its mirror. */
  allowShrink: boolean;
  /** Let a push (or bundle update) replace a newer generation another machine wrote (it stays in history). */
  forcePush?: boolean;
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
  /** The store of a bucket (its files, through the mount or the S3 API). */
  store(bucket: string): Store;
}

/**
 * An observation: `state` is what plan shows and fingerprints (JSON-serialisable, small);
 * `detail` is what apply needs besides (listings, parsed manifests), never fingerprinted.
 */
export interface Seen<State, Detail = null> {
  state: State;
  detail: Detail;
}

/** A folder whose writes are allowed only while `holds` says the bucket is still there. */
export interface MountGuard {
  root: string;
  holds(host: Host): Promise<boolean>;
}

/** Facts `status` shows for a resource (`key=value`). */
export type Facts = Record<string, string | number | boolean | null>;

export interface ApplyContext {
  host: Host;
  env: ResolvedEnvironment;
  options: PlanOptions;
  /** The store of a bucket; the engine has checked the resource's bucket is ready right before the action. */
  store(bucket: string): Store;
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
  /**
   * The module checked that what it wrote is in the store (e.g. a push: manifest and objects).
   * The executor's verification then does not fail the action when the live source changed
   * again meanwhile (an agent writing during a push): it notes it; the next run takes it.
   */
  verifiedInStore?: boolean;
  /**
   * The action that, by design, still follows this one on the same resource: a restore that
   * found the mirror ahead of its manifest (a push killed half-way) leaves a push that writes the
   * manifest matching it. Verification then notes it instead of failing the action; the next
   * apply or watch round carries it out.
   */
  followedBy?: string;
  /**
   * What the action left out of the store although it ran (a file that changed at every read, a
   * database whose snapshot failed), one entry each naming the paths and why. apply notes them;
   * shutdown counts the resource as not saved.
   */
  notSaved?: NotSaved[];
}

export interface NotSaved {
  message: string;
  /** The cause can pass (a writer pausing, a lock released): the same action may save it soon. */
  transient: boolean;
}

/**
 * One module per resource kind. `observe` reads the live state through the host and the store
 * (and must not write); `diff` is pure; `apply` carries out the decision the engine made from an
 * observation it took right before the action (the module does not observe again).
 */
export interface ResourceModule<R, State, Detail = null> {
  kind: ResourceKind;
  /** Rank of this kind's actions inside each phase it acts in (lower runs first). */
  phaseRank: Partial<Record<Phase, number>>;
  /** The resources of this kind in an environment, by name. */
  resources(env: ResolvedEnvironment): Record<string, R>;
  /**
   * The bucket whose mount must be ready before this resource is looked into or changed; null
   * for a kind that is itself what makes a bucket ready (the mount).
   */
  needsBucket(resource: R): string | null;
  /**
   * For a kind that makes a bucket ready: which bucket, and whether an observation says it is
   * ready. null for every other kind.
   */
  readiness: {
    bucketOf(resource: R): string;
    ready(state: State): boolean;
    /** What must still hold while an action writes into the bucket (null: nothing can vanish). */
    guard(resource: R, state: State): MountGuard | null;
  } | null;
  /** Local paths the resource writes (a link inside a bundled repo waits for the repo's restore). */
  localPaths(resource: R): string[];
  /** Local folders that hold other resources' paths, which then depend on this one (a bundle's repo). */
  contains(resource: R): string[];
  observe(resource: R, ctx: ObserveContext): Promise<Seen<State, Detail>>;
  diff(resource: R, state: State, options: PlanOptions): Decision | null;
  apply(resource: R, decision: Decision, seen: Seen<State, Detail>, ctx: ApplyContext): Promise<ApplyOutcome>;
  /** Whether `watch --auto-approve` may carry out this decision unattended. */
  unattended(decision: Decision, state: State): boolean;
  /** What `status` shows about the resource. */
  facts(resource: R, state: State, ctx: ObserveContext): Promise<Facts>;
  /**
   * Optional: why status must not say `ok` although a plan has nothing to do (a backup that does
   * not exist yet because there is nothing to save: `nothing saved yet: ...`), else null.
   */
  unsaved?(resource: R, state: State): string | null;
  /**
   * Optional: what the machine holds that is not in the store although a plan has nothing to do
   * (a repo without commits whose files no bundle can hold yet), and what to do; else null.
   * shutdown counts such a resource as not saved.
   */
  unsavedWork?(resource: R, state: State): string | null;
}
