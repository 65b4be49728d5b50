import { describe, expect, it } from 'vitest';
import { assemblePlan, dependencies, selectTargets, summarize, type ResourceRef } from '../../src/engine/plan.js';
import type { PlannedAction } from '../../src/engine/types.js';
import { planJson, renderChange, renderPlan } from '../../src/output/render.js';
import { makeStyle } from '../../src/output/style.js';

type Diff = Omit<PlannedAction, 'dependsOn'>;
type Address = PlannedAction['address'];

const RANKS = { mount: { mount: 0 }, bundle: { restore: 0, push: 1 }, sync: { restore: 1, push: 0 }, file: { restore: 2 }, link: { link: 0 } };
const ref = (address: Address, localPaths: string[], contains: string[] = []): ResourceRef => {
  const kind = address.split('.')[0] as keyof typeof RANKS;
  return { address, phaseRank: RANKS[kind], ...(kind === 'mount' ? {} : { mount: 'mount.data' as const }), localPaths, contains };
};
const refs: ResourceRef[] = [
  ref('mount.data', []),
  ref('bundle.clawd', ['/root/clawd'], ['/root/clawd']),
  ref('sync.clawdbot', ['/root/.clawdbot']),
  ref('file.credentials', ['/root/clawd/.credentials.env']),
  ref('link.memory', ['/root/clawd/memory']),
  ref('link.logs', ['/root/clawd/logs']),
];

function diff(address: Address, action: PlannedAction['action'], phase: PlannedAction['phase'], extra: Partial<Diff> = {}): Diff {
  const kind = address.split('.')[0] as PlannedAction['kind'];
  return { address, kind, action, phase, reason: `${address} needs ${action}`, changes: [], ...extra };
}

describe('assemblePlan', () => {
  it('orders mounts, restores (bundles, syncs, files), links, pushes (syncs, then bundles)', () => {
    const diffs = [
      diff('bundle.clawd', 'update', 'push'),
      diff('link.logs', 'create', 'link'),
      diff('sync.clawdbot', 'push', 'push'),
      diff('file.credentials', 'restore', 'restore'),
      diff('link.memory', 'adopt', 'link'),
      diff('mount.data', 'mount', 'mount'),
    ];
    const plan = assemblePlan(diffs, refs);
    expect(plan.map((a) => a.address)).toEqual(['mount.data', 'file.credentials', 'link.memory', 'link.logs', 'sync.clawdbot', 'bundle.clawd']);
  });

  it('puts bundle restores before sync and file restores', () => {
    const plan = assemblePlan([diff('file.credentials', 'restore', 'restore'), diff('sync.clawdbot', 'restore', 'restore'), diff('bundle.clawd', 'restore', 'restore')], refs);
    expect(plan.map((a) => a.address)).toEqual(['bundle.clawd', 'sync.clawdbot', 'file.credentials']);
  });

  it('makes everything depend on its mount, and paths inside a bundled repo on the bundle', () => {
    const deps = dependencies(refs);
    expect(deps.get('mount.data')).toEqual([]);
    expect(deps.get('link.memory')).toEqual(['mount.data', 'bundle.clawd']);
    expect(deps.get('file.credentials')).toEqual(['mount.data', 'bundle.clawd']);
    expect(deps.get('sync.clawdbot')).toEqual(['mount.data']);
    expect(deps.get('bundle.clawd')).toEqual(['mount.data']);
  });

  it('limits the plan to targets and what they depend on', () => {
    const diffs = [diff('mount.data', 'mount', 'mount'), diff('link.memory', 'create', 'link'), diff('link.logs', 'create', 'link'), diff('bundle.clawd', 'restore', 'restore')];
    // link.logs lives inside the bundled repo /root/clawd, so the bundle's restore comes along.
    expect(assemblePlan(diffs, refs, ['link.logs']).map((a) => a.address)).toEqual(['mount.data', 'bundle.clawd', 'link.logs']);
    expect(assemblePlan(diffs, refs, ['mount.data']).map((a) => a.address)).toEqual(['mount.data']);
    expect([...selectTargets(['link.memory'], refs)].sort()).toEqual(['bundle.clawd', 'link.memory', 'mount.data']);
  });

  it('rejects an unknown target and lists the known addresses', () => {
    expect(() => selectTargets(['link.nope'], refs)).toThrow(/unknown --target "link.nope".*link.memory/);
  });
});

describe('rendering', () => {
  const plain = makeStyle(false);
  const actions = assemblePlan(
    [
      diff('mount.data', 'mount', 'mount', { reason: 'moltbot-data is not mounted at /data/moltbot', changes: [{ field: 'backend', before: null, after: 'goofys' }] }),
      diff('link.memory', 'relink', 'link', {
        reason: '/root/clawd/memory points into another mount',
        changes: [{ field: 'target', before: '/data/moltbot-production/workspace/memory', after: '/data/moltbot/workspace/memory' }],
      }),
      diff('sync.clawdbot', 'conflict', 'push', {
        reason: 'the push would delete 49 of 50 mirror files',
        conflict: { message: 'the local folder lost most of its files', fix: 'restore from the mirror, or pass --allow-shrink', overrideFlag: '--allow-shrink' },
      }),
    ],
    refs,
  );

  it('prints numbered actions with symbol, address, action, reason, changes and the summary', () => {
    expect(renderPlan(actions, plain, 'persist plan: environment "legacy"')).toBe(
      [
        'persist plan: environment "legacy"',
        '',
        '1. + mount.data  mount',
        '   moltbot-data is not mounted at /data/moltbot',
        '     backend: (none) → goofys',
        '',
        '2. ~ link.memory  relink',
        '   /root/clawd/memory points into another mount',
        '     target: /data/moltbot-production/workspace/memory → /data/moltbot/workspace/memory',
        '',
        '3. ! sync.clawdbot  conflict',
        '   the push would delete 49 of 50 mirror files',
        '   conflict: the local folder lost most of its files',
        '   fix: restore from the mirror, or pass --allow-shrink',
        '',
        'Plan: 1 to add, 1 to change, 0 to replace, 0 to restore.',
        '1 conflict must be resolved first (or pass --allow-shrink where it applies).',
        '',
      ].join('\n'),
    );
  });

  it('says No changes for an empty plan', () => {
    expect(renderPlan([], plain)).toBe('No changes. The machine matches the spec.\n');
  });

  it('highlights only the changed part of a value in colour', () => {
    const line = renderChange({ field: 'target', before: '/data/moltbot-production/m', after: '/data/moltbot/m' }, makeStyle(true));
    expect(line).toBe('target: /data/moltbot\u001b[31m\u001b[1m-production\u001b[22m\u001b[39m/m → /data/moltbot/m');
  });

  it('never shows sensitive values', () => {
    const line = renderChange({ field: 'secretAccessKey', before: 'old-secret', after: 'new-secret', sensitive: true }, plain);
    expect(line).toBe('secretAccessKey: (sensitive) → (sensitive)');
    const json = JSON.stringify(planJson('dev', [{ ...actions[0]!, changes: [{ field: 'key', before: 'a-secret', after: 'b-secret', sensitive: true }] }]));
    expect(json).not.toContain('secret"');
    expect(json).toContain('(sensitive)');
  });

  it('produces the JSON document of the contract', () => {
    const document = planJson('legacy', actions);
    expect(document).toMatchObject({ formatVersion: 1, environment: 'legacy', summary: { add: 1, change: 1, replace: 0, restore: 0, conflicts: 1 } });
    expect(document.actions[1]).toEqual({
      index: 2,
      address: 'link.memory',
      action: 'relink',
      reason: '/root/clawd/memory points into another mount',
      before: { target: '/data/moltbot-production/workspace/memory' },
      after: { target: '/data/moltbot/workspace/memory' },
      dependsOn: ['mount.data', 'bundle.clawd'],
    });
    expect(summarize(actions)).toEqual({ add: 1, change: 1, replace: 0, restore: 0, conflict: 1 });
  });
});
