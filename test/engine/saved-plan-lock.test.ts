import { describe, expect, it } from 'vitest';
import { acquireLock } from '../../src/engine/lock.js';
import { checkFresh, parseSavedPlan, sealPlan } from '../../src/engine/saved-plan.js';
import { LockError, PersistError, StalePlanError } from '../../src/errors.js';
import { MemoryHost } from '../../src/host/memory.js';

const base = {
  specFile: '/s/persist.yaml',
  specHash: 'aaa',
  environment: 'dev',
  createdAt: '2026-01-01T00:00:00.000Z',
  options: { allowShrink: false },
  targets: [],
  fingerprints: { 'mount.data': 'f1', 'link.memory': 'f2' },
  actions: [],
};

describe('saved plans', () => {
  it('round-trips and accepts a fresh plan', () => {
    const text = JSON.stringify(sealPlan(base));
    const plan = parseSavedPlan(text, 'p.plan');
    expect(() => checkFresh(plan, 'p.plan', { specFile: '/s/persist.yaml', specHash: 'aaa', environment: 'dev', fingerprints: base.fingerprints })).not.toThrow();
  });

  it('names the resources that changed since', () => {
    const plan = parseSavedPlan(JSON.stringify(sealPlan(base)), 'p.plan');
    try {
      checkFresh(plan, 'p.plan', { specFile: '/s/persist.yaml', specHash: 'aaa', environment: 'dev', fingerprints: { 'mount.data': 'f1', 'link.memory': 'CHANGED' } });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(StalePlanError);
      expect((error as StalePlanError).changed).toEqual(['link.memory']);
      expect((error as Error).message).toContain('link.memory');
    }
  });

  it('refuses another spec or environment', () => {
    const plan = parseSavedPlan(JSON.stringify(sealPlan(base)), 'p.plan');
    expect(() => checkFresh(plan, 'p.plan', { specFile: '/s/persist.yaml', specHash: 'bbb', environment: 'dev', fingerprints: base.fingerprints })).toThrow(/spec .* changed/);
    expect(() => checkFresh(plan, 'p.plan', { specFile: '/s/persist.yaml', specHash: 'aaa', environment: 'prod', fingerprints: base.fingerprints })).toThrow(/environment "dev", not "prod"/);
    expect(() => checkFresh(plan, 'p.plan', { specFile: '/k/other.yaml', specHash: 'bbb', environment: 'dev', fingerprints: base.fingerprints })).toThrow('p.plan: the plan was made for the spec /s/persist.yaml, not /k/other.yaml; apply it without -f, or run `persist plan --out` with this spec');
  });

  it('refuses tampered, truncated and foreign files with one clear line', () => {
    const text = JSON.stringify(sealPlan(base));
    expect(() => parseSavedPlan(text.replace('"dev"', '"prod"'), 'p.plan')).toThrow(/modified after it was written/);
    expect(() => parseSavedPlan(text.slice(0, 40), 'p.plan')).toThrow(/not valid JSON/);
    expect(() => parseSavedPlan('{"hello": 1}', 'p.plan')).toThrow(PersistError);
    expect(() => parseSavedPlan(JSON.stringify({ ...JSON.parse(text), formatVersion: 9 }), 'p.plan')).toThrow(/format 9/);
  });
});

describe('apply lock', () => {
  it('is exclusive, names the holder, and is released', async () => {
    const host = new MemoryHost();
    const release = await acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 0);
    // The holder (pid 4242 in the memory host) is alive: a second taker gives up naming it.
    await expect(acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 50)).rejects.toThrow(LockError);
    await expect(acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 0)).rejects.toThrow(/pid 4242/);
    await release();
    expect(await host.lstat('/state/apply.lock')).toBeNull();
  });

  it('takes over a lock left by a dead process', async () => {
    const host = new MemoryHost().addFile('/state/apply.lock', JSON.stringify({ pid: 999999, startedAt: 'x', spec: 's', environment: 'dev' }));
    const release = await acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 0);
    expect(JSON.parse((await host.readFile('/state/apply.lock')).toString()).pid).toBe(4242);
    await release();
  });
});
