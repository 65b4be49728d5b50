// The pure core: observed state + resolved spec -> an ordered, numbered plan. No IO here.
import { UsageError } from '../errors.js';
import type { ActionName, Phase, PlannedAction, ResourceKind } from './types.js';

/** Phase order, then the order of kinds inside a phase (DESIGN.md: restores are bundles, syncs,
 * files; pushes are syncs, then bundles). */
const PHASES: Phase[] = ['mount', 'restore', 'link', 'push'];
const KIND_ORDER: Record<Phase, ResourceKind[]> = {
  mount: ['mount'],
  restore: ['bundle', 'sync', 'file'],
  link: ['link'],
  push: ['sync', 'bundle'],
};

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

export interface PlanSummary {
  add: number;
  change: number;
  replace: number;
  restore: number;
  conflict: number;
}

export function summarize(actions: PlannedAction[]): PlanSummary {
  const summary: PlanSummary = { add: 0, change: 0, replace: 0, restore: 0, conflict: 0 };
  for (const action of actions) summary[summaryBucket(action.action)]++;
  return summary;
}

/** A resource as the engine sees it: its address, the bucket it lives in and the local paths it writes. */
export interface ResourceRef {
  address: string;
  kind: ResourceKind;
  /** Address of the mount it needs (`mount.<bucket>`), absent for mounts. */
  mount?: string;
  /** Local paths the resource creates or writes (link path, repo, sync folder, restored file). */
  localPaths: string[];
}

function inside(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
}

/**
 * What each resource depends on: its mount, and a bundle whose repo folder holds its local path
 * (a link or restored file inside /root/clawd waits for the clawd bundle's restore).
 */
export function dependencies(resources: ResourceRef[]): Map<string, string[]> {
  const bundles = resources.filter((r) => r.kind === 'bundle');
  const result = new Map<string, string[]>();
  for (const resource of resources) {
    const deps: string[] = [];
    if (resource.mount) deps.push(resource.mount);
    if (resource.kind !== 'bundle') {
      for (const bundle of bundles) {
        const repo = bundle.localPaths[0];
        if (repo && resource.localPaths.some((p) => inside(p, repo) && p !== repo)) deps.push(bundle.address);
      }
    }
    result.set(resource.address, deps);
  }
  return result;
}

/** The addresses selected by --target, plus everything they depend on (transitively). */
export function selectTargets(targets: string[], resources: ResourceRef[]): Set<string> {
  const known = new Set(resources.map((r) => r.address));
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
    for (const dep of deps.get(address) ?? []) visit(dep);
  };
  for (const target of targets) visit(target);
  return selected;
}

function sortKey(action: Omit<PlannedAction, 'dependsOn'>): [number, number] {
  const phase = PHASES.indexOf(action.phase);
  return [phase, KIND_ORDER[action.phase].indexOf(action.kind)];
}

/**
 * Assemble the plan: keep the actions of selected resources, attach dependencies, and order them
 * by phase (mounts, restores, links, pushes), then kind, then the spec's declaration order.
 */
export function assemblePlan(
  diffs: Omit<PlannedAction, 'dependsOn'>[],
  resources: ResourceRef[],
  targets: string[] = [],
): PlannedAction[] {
  const selected = targets.length > 0 ? selectTargets(targets, resources) : undefined;
  const deps = dependencies(resources);
  const declared = new Map(resources.map((r, i) => [r.address, i]));
  return diffs
    .filter((d) => !selected || selected.has(d.address))
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const [pa, ka] = sortKey(a.d);
      const [pb, kb] = sortKey(b.d);
      return pa - pb || ka - kb || (declared.get(a.d.address) ?? a.i) - (declared.get(b.d.address) ?? b.i);
    })
    .map(({ d }) => ({ ...d, dependsOn: deps.get(d.address) ?? [] }));
}
