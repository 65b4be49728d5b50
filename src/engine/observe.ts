// Observation of one environment: the resources that make buckets ready (mounts) first, since
// what lies in a bucket is only visible once it is mounted; then every other resource
// concurrently. Returns each resource's observation and its diff.
import { createHash } from 'node:crypto';
import type { Host } from '../host/types.js';
import { isMounted, type ResolvedEnvironment } from '../spec/types.js';
import { resourceModules, type AnyModule } from '../resources/index.js';
import { storesFor } from '../store/index.js';
import { getBackend } from '../backends/registry.js';
import { addressOf, mountAddress, type Address } from './address.js';
import type { ResourceRef } from './plan.js';
import { PathError, StoreError, type UnobservedError } from '../errors.js';
import { PATH_TROUBLE, showPath } from '../output/format.js';
import { pathString } from '../host/names.js';
import type { Decision, ObserveContext, Phase, PlannedAction, PlanOptions, Seen } from './types.js';

/** A resource of the environment with its module. */
export interface Entry {
  address: Address;
  module: AnyModule;
  resource: unknown;
  ref: ResourceRef;
}

export interface ObservedResource extends Entry {
  seen: Seen<unknown, unknown>;
  diff: Decision | null;
  /**
   * Its bucket's store failed, its bucket's mount died, or a path it reads answered with a file
   * system error (PathError), while it was looked into: `seen` holds nothing, `diff` is a conflict
   * saying so.
   */
  unobserved?: UnobservedError;
}

export interface Observation {
  resources: ObservedResource[];
  refs: ResourceRef[];
  mountReady: Record<string, boolean>;
  ctx: ObserveContext;
}

/**
 * What resources with nothing to do hold outside the store all the same (ResourceModule.unsavedWork:
 * a repo without commits holding files): one line each, so that a plan saying "No changes" does not
 * read as "all saved".
 */
export function unsavedWorkNotes(observation: Observation, actions: readonly PlannedAction[]): string[] {
  const acting = new Set(actions.map((action) => action.address));
  return observation.resources.flatMap((observed) => {
    const why = acting.has(observed.address) ? null : observed.module.unsavedWork?.(observed.resource, observed.seen.state);
    return why ? [`${observed.address}: not saved: ${why}`] : [];
  });
}

/** sha256 of what was observed (its `state`): a resource's fingerprint in a saved plan. */
export function fingerprint(state: unknown): string {
  return createHash('sha256').update(JSON.stringify(state)).digest('hex');
}

/** Every resource of the environment in declaration order, with its address. */
export function listResources(env: ResolvedEnvironment): Entry[] {
  const makers = new Map<string, Address>();
  for (const module of resourceModules) {
    if (!module.readiness) continue;
    for (const [name, resource] of Object.entries(module.resources(env))) makers.set(module.readiness.bucketOf(resource), addressOf(module.kind, name));
  }
  const list: Entry[] = [];
  for (const module of resourceModules) {
    for (const [name, resource] of Object.entries(module.resources(env))) {
      const address = addressOf(module.kind, name);
      const bucket = module.needsBucket(resource);
      const mount = bucket === null ? undefined : makers.get(bucket);
      const ref: ResourceRef = { address, phaseRank: module.phaseRank, localPaths: module.localPaths(resource), contains: module.contains(resource), ...(mount ? { mount } : {}) };
      list.push({ address, module, resource, ref });
    }
  }
  return list;
}

export function observeContext(host: Host, env: ResolvedEnvironment): ObserveContext {
  // A bucket without a mount is reached through its S3 API: no resource readies it, it is ready.
  const mountReady = Object.fromEntries(Object.values(env.buckets).filter((bucket) => !bucket.mount).map((bucket) => [bucket.key, true]));
  return { host, env, mountReady, store: storesFor(env, host) };
}

/**
 * Observe one resource and diff it. `maker` is the observation of the resource that makes its
 * bucket ready, when there is one: if that one could not be looked into, neither can this one
 * (nothing is known of the bucket it compares with), and it says so without reading anything.
 */
export async function observeEntry(entry: Entry, ctx: ObserveContext, options: PlanOptions, maker?: ObservedResource): Promise<ObservedResource> {
  if (maker?.unobserved) return unobservable(entry, maker.unobserved, `cannot be looked into while ${maker.address} cannot: `);
  let seen: Seen<unknown, unknown>;
  try {
    seen = await entry.module.observe(entry.resource, ctx);
  } catch (caught) {
    // One bucket's store failing (or its mount dying under us), or one bad path (a symbolic link
    // loop, a folder the user may not read), stops only its own resource: the others are planned
    // and applied.
    const error = caught instanceof StoreError ? caught : (mountDiedUnder(entry, ctx, caught) ?? pathTrouble(caught));
    if (!error) throw caught;
    return unobservable(entry, error, 'cannot be looked into: ');
  }
  return { ...entry, seen, diff: entry.module.diff(entry.resource, seen.state, options) };
}

/** A resource whose observation failed on `error`: nothing seen, and a conflict saying why, with the error's fix. */
function unobservable(entry: Entry, error: UnobservedError, lead: string): ObservedResource {
  const phase = (Object.keys(entry.module.phaseRank)[0] ?? 'push') as Phase;
  const message = `${lead}${error.message}`;
  const diff: Decision = { address: entry.address, kind: entry.module.kind, action: 'conflict', phase, reason: message, changes: [], conflict: { message, fix: error.fix } };
  return { ...entry, seen: { state: null, detail: null }, diff, unobserved: error };
}

/** What a FUSE mount answers once its daemon is gone (ENOTCONN), or while a failed mount tears down (ECONNABORTED). */
const DEAD_MOUNT_CODES = new Set(['ENOTCONN', 'ECONNABORTED']);

function deadMountCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code && DEAD_MOUNT_CODES.has(code)) return code;
  }
  return undefined;
}

/**
 * The mount of the entry's bucket died while the entry was looked into (its own observation,
 * earlier, found it alive): a passing failure, since the next plan finds the mount dead and
 * remounts it. Undefined for any other error.
 */
function mountDiedUnder(entry: Entry, ctx: ObserveContext, error: unknown): StoreError | undefined {
  const key = entry.module.needsBucket(entry.resource);
  const bucket = key === null ? undefined : ctx.env.buckets[key];
  const code = deadMountCode(error);
  if (!bucket || !isMounted(bucket) || !getBackend(bucket.mount.backend).fuse || !code) return undefined;
  const mount = mountAddress(bucket.key);
  return new StoreError(
    `the mount at ${bucket.mount.path} (${mount}) died while it was looked at (${error instanceof Error ? error.message : code})`,
    `Run the command again: its plan finds ${mount} dead and remounts it.`,
    true,
    { cause: error },
  );
}

/**
 * A file system error of a path (ELOOP, EACCES, EPERM, ENOTDIR, EIO, ...: PATH_TROUBLE), found on
 * the error or what caused it, as a PathError naming the path and the trouble in words. Undefined
 * for any other error, and for one that names no path (not a path's trouble: persist's own).
 */
export function pathTrouble(error: unknown): PathError | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PathError) return e;
    const { code, path } = e as NodeJS.ErrnoException & { path?: string | Buffer };
    const trouble = code !== undefined && Object.hasOwn(PATH_TROUBLE, code) ? PATH_TROUBLE[code] : undefined;
    if (!trouble || (typeof path !== 'string' && !Buffer.isBuffer(path)) || path.length === 0) continue;
    const named = pathString(path);
    return new PathError(`${showPath(named)}: ${trouble.words} (${code})`, named, code!, trouble.fix(named), trouble.transient === true, { cause: error });
  }
  return undefined;
}

/**
 * Whether a bucket-readying resource's observation says its bucket can be looked into (not when
 * the observation itself failed: nothing is known of the bucket, so nothing is read or written in it).
 */
export function recordReadiness(ctx: ObserveContext, observed: ObservedResource): void {
  const readiness = observed.module.readiness;
  if (readiness) ctx.mountReady[readiness.bucketOf(observed.resource)] = !observed.unobserved && readiness.ready(observed.seen.state);
}

/** Observe every resource and diff each against the spec. */
export async function observeEnvironment(host: Host, env: ResolvedEnvironment, options: PlanOptions): Promise<Observation> {
  const all = listResources(env);
  const ctx = observeContext(host, env);
  const makers = await Promise.all(all.filter((e) => e.module.readiness).map((e) => observeEntry(e, ctx, options)));
  for (const m of makers) recordReadiness(ctx, m);
  const makerOf = new Map(makers.map((m) => [m.address, m]));
  const others = await Promise.all(all.filter((e) => !e.module.readiness).map((e) => observeEntry(e, ctx, options, e.ref.mount === undefined ? undefined : makerOf.get(e.ref.mount))));
  return { resources: [...makers, ...others], refs: all.map((e) => e.ref), mountReady: ctx.mountReady, ctx };
}
