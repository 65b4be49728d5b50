// Observation of one environment: mounts first (what lies in a mount is only visible once it is
// mounted), then every other resource concurrently. Returns each resource's observed state, its
// fingerprint (hash of the observed state, for saved plans) and the diff.
import { createHash } from 'node:crypto';
import type { Host } from '../host/types.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { resourceModules, type AnyModule } from '../resources/index.js';
import { mountReady } from '../resources/mount/index.js';
import type { ResourceRef } from './plan.js';
import type { ObserveContext, PlanOptions, PlannedAction } from './types.js';

export interface ObservedResource {
  address: string;
  module: AnyModule;
  resource: unknown;
  observed: unknown;
  fingerprint: string;
  diff: Omit<PlannedAction, 'dependsOn'> | null;
}

export interface Observation {
  resources: ObservedResource[];
  refs: ResourceRef[];
  mountReady: Record<string, boolean>;
}

export function fingerprint(observed: unknown): string {
  return createHash('sha256').update(JSON.stringify(observed)).digest('hex');
}

/** Every resource of the environment in declaration order, with its address. */
export function listResources(env: ResolvedEnvironment): { address: string; module: AnyModule; resource: unknown; ref: ResourceRef }[] {
  const list = [];
  for (const module of resourceModules) {
    for (const [name, resource] of Object.entries(module.resources(env))) {
      const address = `${module.kind}.${name}`;
      const mount = module.kind === 'mount' ? undefined : `mount.${module.bucketOf(resource)}`;
      list.push({ address, module, resource, ref: { address, kind: module.kind, mount, localPaths: module.localPaths(resource) } });
    }
  }
  return list;
}

async function observeOne(
  entry: { address: string; module: AnyModule; resource: unknown },
  ctx: ObserveContext,
  options: PlanOptions,
): Promise<ObservedResource> {
  const observed = await entry.module.observe(entry.resource, ctx);
  return { ...entry, observed, fingerprint: fingerprint(observed), diff: entry.module.diff(entry.resource, observed, options) };
}

/** Observe the resources (all, or only `only` addresses) and diff each against the spec. */
export async function observeEnvironment(
  host: Host,
  env: ResolvedEnvironment,
  options: PlanOptions,
  only?: Set<string>,
): Promise<Observation> {
  const all = listResources(env);
  const wanted = all.filter((e) => !only || only.has(e.address) || e.module.kind === 'mount');
  const ctx: ObserveContext = { host, env, mountReady: {} };
  const mounts = await Promise.all(wanted.filter((e) => e.module.kind === 'mount').map((e) => observeOne(e, ctx, options)));
  for (const m of mounts) ctx.mountReady[(m.resource as { key: string }).key] = mountReady(m.observed as never);
  const others = await Promise.all(wanted.filter((e) => e.module.kind !== 'mount').map((e) => observeOne(e, ctx, options)));
  const observed = [...mounts, ...others].filter((o) => !only || only.has(o.address));
  return { resources: observed, refs: all.map((e) => e.ref), mountReady: ctx.mountReady };
}
