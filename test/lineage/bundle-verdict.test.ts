// The lineage rules for a repo with commits (pure): what a bundle's plan becomes for each thing
// the store holds and each thing this machine saw (README, "Lineage").
import { describe, expect, it } from 'vitest';
import { bundleLineageVerdict, type BundleLineage } from '../../src/resources/bundle/generations.js';
import { resolvingCommand } from '../../src/lineage/resolve.js';
import type { ResolvedBundle } from '../../src/spec/types.js';

const bundle: ResolvedBundle = { name: 'clawd', bucket: 'data', repo: '/root/clawd', relFile: 'clawd.bundle', file: '/data/clawd.bundle', keep: 5 };
const store = { bucket: 'moltbot-data-production', endpoint: null, prefix: null, key: 'clawd.bundle', path: null };
const current = { generation: 3, parent: 2, time: '2025-01-01T00:00:00.000Z', machine: 'a'.repeat(32), host: 'other', files: 1, bytes: 100 };
const plan = { allowShrink: false };

function lineage(over: Partial<BundleLineage>): BundleLineage {
  return { store, current, seen: 3, foreign: null, me: 'b'.repeat(32), ...over };
}

describe('bundleLineageVerdict', () => {
  it('a repo of another store is a conflict, whatever the bundle holds', () => {
    const foreign = { store: { ...store, bucket: 'moltbot-data-development' }, environment: 'development', event: 'push', at: '2025-01-01T00:00:00.000Z' };
    const verdict = bundleLineageVerdict(bundle, lineage({ foreign }), false, 2, plan);
    expect(verdict.decision?.action).toBe('conflict');
    expect(verdict.decision?.reason).toContain('holds the repo of bucket moltbot-data-development');
    expect(resolvingCommand(verdict.decision!)).toBe('mv /root/clawd /root/clawd.development');
  });

  it('a first save, and a bundle written before lineage, follow the bundle rules', () => {
    expect(bundleLineageVerdict(bundle, lineage({ seen: null }), false, 2, plan)).toEqual({});
    expect(bundleLineageVerdict(bundle, lineage({ current: null, seen: null }), true, 2, plan)).toEqual({});
  });

  it('a bundle never seen here is restored, the repo kept aside; one the repo already holds is only recorded', () => {
    const restore = bundleLineageVerdict(bundle, lineage({ seen: null }), true, 2, plan).restore!;
    expect(restore.note).toBe('local repo kept aside: 2 refs differ');
    expect(restore.reason).toMatch(/never restored or saved: restored, never saved over/);
    expect(restore.recordOnly).toBeUndefined();
    expect(bundleLineageVerdict(bundle, lineage({ seen: null }), true, 0, plan).restore).toMatchObject({ recordOnly: true });
    expect(bundleLineageVerdict(bundle, lineage({ seen: 2 }), true, 0, plan).restore).toMatchObject({ recordOnly: true });
    expect(bundleLineageVerdict(bundle, lineage({}), true, 0, plan)).toEqual({});
  });

  it('a newer generation by another machine: taken when the repo is unchanged, else a conflict with both ways out', () => {
    expect(bundleLineageVerdict(bundle, lineage({ seen: 2, unchangedSinceSeen: true }), true, 1, plan).restore?.reason).toMatch(/unchanged since generation 2/);
    const refused = bundleLineageVerdict(bundle, lineage({ seen: 2 }), true, 2, plan).decision!;
    expect(refused.conflict?.message).toMatch(/holds generation 3, written by other \(aaaaaaaa\) at 2025-01-01T00:00:00.000Z, newer than generation 2.* an update would replace the other machine's commits$/);
    expect(refused.conflict?.overrideFlag).toBe('--force-push');
    expect(resolvingCommand(refused)).toBe('persist rollback bundle.clawd --to 3');
    expect(bundleLineageVerdict(bundle, lineage({ seen: 2 }), true, 2, { ...plan, forcePush: true }).mayDrop).toMatch(/--force-push: saving over generation 3/);
  });

  it('a bundle older than what this machine saved is a conflict too', () => {
    const refused = bundleLineageVerdict(bundle, lineage({ seen: 4 }), true, 2, plan).decision!;
    expect(refused.conflict?.message).toMatch(/older than generation 4 this machine saved/);
    expect(bundleLineageVerdict(bundle, lineage({ seen: 4 }), true, 2, { ...plan, forcePush: true }).mayDrop).toBeDefined();
  });

  it('a repo rolled back from the current generation may drop what only that generation holds', () => {
    expect(bundleLineageVerdict(bundle, lineage({ rolledBack: true }), true, 2, plan).mayDrop).toMatch(/rolled back from generation 3/);
    expect(bundleLineageVerdict(bundle, lineage({}), true, 2, plan)).toEqual({});
  });
});
