// The pure core: observed state + resolved spec -> an ordered, numbered plan. No IO here, and no
// knowledge of kinds: each resource comes with its module's phase ranks, the mount it needs and
// the local folders it contains.
import { UsageError } from '../errors.js';
import type { Address } from './address.js';
import { PHASES, type ActionName, type Decision, type Phase, type PlannedAction } from './types.js';

export const SYMBOLS: Record<ActionName, string> = {
  mount: '+',
  create: '+',
  remount: '~',
  adopt: '~',
  relink: '~',
  update: '~',
  push: '~',
  replace: '-/+',
  restore: '<=',
  conflict: '!',
};

export type SummaryBucket = 'add' | 'change' | 'replace' | 'restore' | 'conflict';

export function summaryBucket(action: ActionName): SummaryBucket {
  switch (SYMBOLS[action]) {
    case '+':
      return 'add';
    case '-/+':
      return 'replace';
    case '<=':
      return 'restore';
    case '!':
      return 'conflict';
    default:
      return 'change';
  }
}

export type PlanSummary = Record<SummaryBucket, number>;

export function summarize(actions: PlannedAction[]): PlanSummary {
  const summary: PlanSummary = { add: 0, change: 0, replace: 0, restore: 0, conflict: 0 };
  for (const action of actions) summary[summaryBucket(action.action)]++;
  return summary;
}

/** A resource as the engine sees it. */
export interface ResourceRef {
  address: Address;
  /** Rank of its actions inside each phase (from its module). */
  phaseRank: Partial<Record<Phase, number>>;
  /** Address of the resource that makes its bucket ready (`mount.<bucket>`), if it needs one. */
  mount?: Address;
  /** Local paths the resource creates or writes (link path, repo, sync folder, restored file). */
  localPaths: string[];
  /** Local folders that hold other resources' paths (a bundle's repo). */
  contains: string[];
}

function strictlyInside(path: string, folder: string): boolean {
  return path !== folder && path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
}

/**
 * What each resource depends on: its mount, and a resource whose folder holds its local path (a
 * link or restored file inside /root/clawd waits for the clawd bundle's restore).
 */
export function dependencies(resources: ResourceRef[]): Map<Address, Address[]> {
  const holders = resources.filter((r) => r.contains.length > 0);
  const result = new Map<Address, Address[]>();
  for (const resource of resources) {
    const deps: Address[] = [];
    if (resource.mount) deps.push(resource.mount);
    for (const holder of holders) {
      if (holder === resource) continue;
      if (resource.localPaths.some((p) => holder.contains.some((folder) => strictlyInside(p, folder)))) deps.push(holder.address);
    }
    result.set(resource.address, deps);
  }
  return result;
}

/** The addresses selected by --target, plus everything they depend on (transitively). */
export function selectTargets(targets: string[], resources: ResourceRef[]): Set<string> {
  const known = new Set<string>(resources.map((r) => r.address));
  const unknown = targets.filter((t) => !known.has(t));
  if (unknown.length > 0) {
    const list = [...known].sort().join(', ');
    throw new UsageError(`unknown --target ${unknown.map((t) => `"${t}"`).join(', ')}; the spec's resources are: ${list}`);
  }
  const deps = dependencies(resources);
  const selected = new Set<string>();
  const visit = (address: string): void => {
    if (selected.has(address)) return;
    selected.add(address);
    for (const dep of deps.get(address as Address) ?? []) visit(dep);
  };
  for (const target of targets) visit(target);
  return selected;
}

/**
 * Assemble the plan: keep the actions of selected resources, attach dependencies, and order them
 * by phase (mounts, restores, links, pushes), then the kind's rank in that phase, then the
 * spec's declaration order.
 */
export function assemblePlan(diffs: Decision[], resources: ResourceRef[], targets: string[] = []): PlannedAction[] {
  const selected = targets.length > 0 ? selectTargets(targets, resources) : undefined;
  const deps = dependencies(resources);
  const refs = new Map(resources.map((r, i) => [r.address, { ref: r, declared: i }]));
  const key = (d: Decision, i: number): [number, number, number] => {
    const entry = refs.get(d.address);
    return [PHASES.indexOf(d.phase), entry?.ref.phaseRank[d.phase] ?? 0, entry?.declared ?? i];
  };
  return diffs
    .filter((d) => !selected || selected.has(d.address))
    .map((d, i) => ({ d, k: key(d, i) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2])
    .map(({ d }) => ({ ...d, dependsOn: deps.get(d.address) ?? [] }));
}
