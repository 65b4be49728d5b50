// What used to reach past the Host (spec loading and its cache, saved plans, the lock's clock)
// now runs on the in-memory host: no disk, no waiting.
import { describe, expect, it } from 'vitest';
import { acquireLock } from '../../src/engine/lock.js';
import { readSavedPlan, sealPlan, writeSavedPlan } from '../../src/engine/saved-plan.js';
import { LockError } from '../../src/errors.js';
import { MemoryHost } from '../../src/host/memory.js';
import { loadEnvironment, rememberSpec, validateSpec } from '../../src/spec/index.js';

const SPEC = 'version: 1\nbuckets:\n  data:\n    name: mem\n    mount: { backend: local, path: ./bucket }\nlinks:\n  memory: workspace/memory\n';

describe('the spec through the Host', () => {
  it('is read from the host, relative to its working directory, and cached through it', async () => {
    const host = new MemoryHost().addFile('/project/persist.yaml', SPEC);
    host.workingDir = '/project';
    const input = { file: 'persist.yaml', processEnv: {}, host, cacheDir: '/state/spec-cache' };
    const env = await loadEnvironment(input);
    expect(env.specFile).toBe('/project/persist.yaml');
    expect(env.buckets.data?.mount?.path).toBe('/project/bucket');
    expect(host.nodes.has('/state/spec-cache')).toBe(false); // loading never writes
    await rememberSpec(input, env.specHash);
    const entry = `/state/spec-cache/${env.specHash}.json`;
    expect(host.nodes.get(entry)).toMatchObject({ type: 'file', mode: 0o600 });
    expect(await host.readdir('/state/spec-cache')).toEqual([`${env.specHash}.json`]);
    expect((await validateSpec(input)).problems).toEqual([]);
  });

  it('names a missing spec and a folder given as the spec', async () => {
    const host = new MemoryHost().addDir('/project/folder.yaml');
    await expect(loadEnvironment({ file: '/project/absent.yaml', processEnv: {}, host })).rejects.toThrow(/spec file \/project\/absent\.yaml does not exist/);
    await expect(loadEnvironment({ file: '/project/folder.yaml', processEnv: {}, host })).rejects.toThrow(/is a directory, expected a YAML file/);
  });
});

describe('saved plans through the Host', () => {
  it('are written with mode 0600 and read back; a missing one is named', async () => {
    const host = new MemoryHost().addDir('/w');
    const plan = sealPlan({ specFile: 's', specHash: 'h', environment: 'dev', createdAt: host.now().toISOString(), options: { allowShrink: false }, targets: [], fingerprints: {}, actions: [] });
    await writeSavedPlan(host, '/w/boot.plan', 'boot.plan', plan);
    expect(host.nodes.get('/w/boot.plan')).toMatchObject({ mode: 0o600 });
    expect(await readSavedPlan(host, '/w/boot.plan', 'boot.plan')).toEqual(plan);
    await expect(readSavedPlan(host, '/w/none.plan', 'none.plan')).rejects.toThrow('none.plan: cannot read the saved plan (no such file)');
    await expect(readSavedPlan(host, '/w', 'w')).rejects.toThrow('w: cannot read the saved plan (it is a directory)');
  });
});

describe("the lock's clock", () => {
  it('waits on the host clock: a ten-minute timeout passes at once on the in-memory host', async () => {
    const host = new MemoryHost();
    const release = await acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 0);
    const started = host.now().getTime();
    const wall = performance.now();
    await expect(acquireLock(host, '/state', { spec: 's', environment: 'dev' }, 600_000)).rejects.toThrow(LockError);
    expect(host.now().getTime() - started).toBeGreaterThanOrEqual(600_000);
    expect(performance.now() - wall).toBeLessThan(5_000);
    await release();
  });
});
