// A sync's lineage at apply time, on real folders and a `local` bucket: what watch may run
// unattended (a restore that moves nothing aside), the excluded files a restore over local files
// leaves in place, and a push refused because the store moved on since it was observed, which
// writes nothing into the mirror.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ActionError } from '../../src/errors.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost } from '../../src/host/wrappers.js';
import { syncModule, type SyncObserved } from '../../src/resources/sync/index.js';
import type { ResolvedEnvironment, ResolvedSync } from '../../src/spec/types.js';
import { storesFor } from '../../src/store/index.js';
import { applyPlanned, observing } from '../helpers/resources.js';
import { folderPerTestWithState } from '../helpers/temp.js';
import { applyContext, environment } from '../resources/sync-helpers.js';

const host = new RealHost();
let root: string;
let mount: string;

const testFolder = folderPerTestWithState('persist-sync-lineage-');

beforeEach(async () => {
  root = testFolder();
  mount = join(root, 'mount');
  await mkdir(mount, { recursive: true });
});

function makeSync(from: string, exclude: string[] = []): ResolvedSync {
  return { name: 'state', bucket: 'data', from: join(root, from), relTo: 'state', to: join(mount, 'state'), delete: true, exclude, maxDeleteRatio: 0.5 };
}

function envOf(sync: ResolvedSync): ResolvedEnvironment {
  return { ...environment(mount, { syncs: { [sync.name]: sync } }), workspace: join(root, 'ws') };
}

/** The machine the next steps run as: each has its own state folder (and machine id). */
function as(machine: string): void {
  process.env.PERSIST_STATE_DIR = join(root, `state-${machine}`);
}

async function put(folder: string, path: string, text: string): Promise<void> {
  await mkdir(join(folder, path, '..'), { recursive: true });
  await writeFile(join(folder, path), text);
}

async function observe(sync: ResolvedSync) {
  return syncModule.observe(sync, observing({ host: readOnlyHost(host), env: envOf(sync), mountReady: { data: true } }));
}

/** The decision a plan makes now, and whether watch --auto-approve would carry it out. */
async function decide(sync: ResolvedSync) {
  const { state } = await observe(sync);
  const decision = syncModule.diff(sync, JSON.parse(JSON.stringify(state)) as SyncObserved, { allowShrink: false });
  return { decision, unattended: decision ? syncModule.unattended(decision, state) : false };
}

async function applyNow(sync: ResolvedSync) {
  const { decision } = await decide(sync);
  if (!decision) throw new Error('expected an action');
  return applyPlanned({ ...decision, dependsOn: [] }, applyContext(host, envOf(sync)));
}

describe('sync lineage at apply time', () => {
  it('watch restores unattended only what moves nothing aside: never over local files this machine has not seen', async () => {
    // Machine A pushes; this folder never synced with the store holds files of its own.
    as('a');
    const a = makeSync('a');
    await put(a.from, 'f1', 'from a\n');
    await applyNow(a);
    as('c');
    const c = makeSync('c');
    await put(c.from, 'f1', 'c wrote this\n');
    await put(c.from, 'notes.md', 'the agent\n');
    const over = await decide(c);
    expect(over.decision).toMatchObject({ action: 'restore', note: 'local files kept aside: 2 differ' });
    expect(over.unattended).toBe(false);

    // The same files as the store's (a subset of it): nothing would move aside.
    const same = makeSync('same');
    await put(same.from, 'f1', 'from a\n');
    as('a');
    await put(a.from, 'f2', 'second\n');
    await applyNow(a);
    as('same');
    const subset = await decide(same);
    expect(subset.decision).toMatchObject({ action: 'restore' });
    expect(subset.unattended).toBe(true);

    as('new');
    // A missing folder, and an empty one: restored unattended.
    expect(await decide(makeSync('missing'))).toMatchObject({ decision: { action: 'restore' }, unattended: true });
    await mkdir(join(root, 'empty'));
    expect(await decide(makeSync('empty'))).toMatchObject({ decision: { action: 'restore' }, unattended: true });
  });

  it('a resumed restore runs unattended only when no local file differs from the mirror', async () => {
    as('a');
    const a = makeSync('a');
    const names = Array.from({ length: 40 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    for (const name of names) await put(a.from, name, `v${name}\n`);
    await applyNow(a);
    // Another machine's restore is cut off after a few files.
    as('c');
    const c = makeSync('c');
    const controller = new AbortController();
    const ctx = applyContext(host, envOf(c), { allowShrink: false }, controller.signal);
    ctx.report = () => controller.abort();
    const { decision } = await decide(c);
    await expect(applyPlanned({ ...decision!, dependsOn: [] }, ctx)).rejects.toThrow(/resumes the restore/);
    const restored = (await readdir(c.from)).filter((name) => !name.startsWith('.')).sort();
    expect(restored.length).toBeGreaterThan(0);

    // A file the agent added meanwhile stays where it is: still nothing moves aside.
    await put(c.from, 'notes.md', 'the agent\n');
    expect(await decide(c)).toMatchObject({ decision: { action: 'restore' }, unattended: true });
    // One of the mirror's files the agent rewrote would be kept aside: a person decides.
    await put(c.from, restored[0]!, 'agent edit\n');
    expect(await decide(c)).toMatchObject({ decision: { action: 'restore' }, unattended: false });
  });

  it("a restore over local files leaves the sync's excluded files in place; only the others are kept aside, and counted", async () => {
    as('a');
    const a = makeSync('a', ['*.lock', '*.tmp']);
    await put(a.from, 'f1', 'from a\n');
    await put(a.from, 'deep/x', 'x\n');
    await applyNow(a);
    as('c');
    const c = makeSync('c', ['*.lock', '*.tmp']);
    await put(c.from, 'f1', 'c wrote this\n');
    await put(c.from, 'agent.lock', 'pid 42\n');
    await put(c.from, 'deep/w.tmp', 'half written\n');
    const { decision } = await decide(c);
    expect(decision).toMatchObject({ action: 'restore', note: 'local files kept aside: 1 differ' });
    const outcome = await applyNow(c);
    expect(outcome.notes?.join('\n')).toMatch(/kept aside in .*\.persist-backups/);

    expect(await readFile(join(c.from, 'f1'), 'utf8')).toBe('from a\n');
    expect(await readFile(join(c.from, 'deep/x'), 'utf8')).toBe('x\n');
    expect(await readFile(join(c.from, 'agent.lock'), 'utf8')).toBe('pid 42\n');
    expect(await readFile(join(c.from, 'deep/w.tmp'), 'utf8')).toBe('half written\n');
    const backups = join(root, 'ws', '.persist-backups');
    const [aside] = await readdir(backups);
    expect(await readFile(join(backups, aside!, 'f1'), 'utf8')).toBe('c wrote this\n');
    expect(existsSync(join(backups, aside!, 'agent.lock'))).toBe(false);
    expect(existsSync(join(backups, aside!, 'deep/w.tmp'))).toBe(false);
    expect((await decide(c)).decision).toBeNull();
  });

  it('a push refused because another machine wrote the first root since it was observed writes nothing into the mirror', async () => {
    as('mine');
    const mine = makeSync('mine');
    await put(mine.from, 'notes.md', 'mine\n');
    const stale = await observe(mine); // the mirror has no root yet
    const { decision } = await decide(mine);
    expect(decision).toMatchObject({ action: 'push' });

    // Meanwhile another machine's first push writes generation 1.
    as('other');
    const other = makeSync('other');
    await put(other.from, 'notes.md', 'theirs\n');
    await applyNow(other);
    const before = await readdir(join(mount, 'state', '.persist-sync'));
    as('mine');

    const env = envOf(mine);
    const stores = storesFor(env, host);
    const refused = syncModule.apply(mine, decision!, stale, { ...applyContext(host, env), store: stores });
    await expect(refused).rejects.toThrow(ActionError);
    await expect(refused).rejects.toThrow(/the store now holds generation 1, .*nothing more was written/);
    expect(await readdir(join(mount, 'state', '.persist-sync'))).toEqual(before);
    expect(before).not.toContain('first-push.json');
    expect(await readFile(join(mount, 'state', 'notes.md'), 'utf8')).toBe('theirs\n');
  });
});
