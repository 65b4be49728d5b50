// file.<name> on real files: a `local` bucket in a temporary directory, the real host.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PlannedAction } from '../../src/engine/types.js';
import { RealHost } from '../../src/host/real.js';
import { readOnlyHost, recordingHost } from '../../src/host/wrappers.js';
import { diffFile, fileModule, type FileObserved } from '../../src/resources/file/index.js';
import type { ResolvedFile } from '../../src/spec/types.js';
import { applyContext, environment } from './sync-helpers.js';
import { applyPlanned, observing } from '../helpers/resources.js';

const SECRET = 'R2_SECRET_ACCESS_KEY=do-not-print-me-42';
const host = new RealHost();
let root: string;
let mount: string;
let file: ResolvedFile;

async function plan(mountReady = true): Promise<PlannedAction | null> {
  const env = environment(mount, { files: { credentials: file } });
  const observed = (await fileModule.observe(file, observing({ host: readOnlyHost(host), env, mountReady: { data: mountReady } }))).state;
  expect(JSON.stringify(observed)).not.toContain('do-not-print-me');
  const decided = fileModule.diff(file, observed, { allowShrink: false });
  return decided ? { ...decided, dependsOn: [] } : null;
}

async function apply(action: PlannedAction) {
  const recorder = recordingHost(host);
  const outcome = await applyPlanned(action, applyContext(recorder, { ...environment(mount, { files: { credentials: file } }), workspace: root }));
  return { outcome, writes: recorder.writes };
}

function expectNoSecret(value: unknown): void {
  expect(JSON.stringify(value)).not.toContain('do-not-print-me');
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'persist-file-'));
  mount = join(root, 'mount');
  await mkdir(mount);
  file = { name: 'credentials', bucket: 'data', relFrom: '.credentials.env', from: join(mount, '.credentials.env'), to: join(root, 'clawd', '.credentials.env'), mode: 0o600 };
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('file restore', () => {
  it('restores a missing file with mode 0600, never showing its content', async () => {
    await writeFile(file.from, SECRET, { mode: 0o644 });
    const action = (await plan())!;
    expect(action).toMatchObject({ address: 'file.credentials', kind: 'file', action: 'restore', phase: 'restore' });
    expect(action.changes).toEqual([
      { field: 'content', before: null, after: 'from the mount' },
      { field: 'mode', before: null, after: '0600' },
    ]);
    expectNoSecret(action);
    const { outcome, writes } = await apply(action);
    expectNoSecret(outcome);
    expect(outcome.summary).toBe(`restored ${SECRET.length} bytes, mode 0600`);
    expect(await readFile(file.to, 'utf8')).toBe(SECRET);
    expect((await stat(file.to)).mode & 0o777).toBe(0o600);
    // written under a temporary name, created with its final mode, then renamed
    const temp = new RegExp(`^${join(root, 'clawd')}/\\.\\.credentials\\.env\\.persist-tmp-[0-9a-f]{12}$`);
    expect(writes).toContainEqual({ method: 'writeFile', path: expect.stringMatching(temp) });
    expect(writes).toContainEqual({ method: 'rename', path: file.to }); // recorded under its destination
    expect(writes.filter((w) => w.path.startsWith(mount))).toEqual([]);
    expect(await readdir(join(root, 'clawd'))).toEqual(['.credentials.env']);
    expect(await plan()).toBeNull();
  });

  it('a file where its parent folder belongs is a conflict naming it (before: a restore that failed with EEXIST)', async () => {
    await writeFile(file.from, SECRET);
    await writeFile(join(root, 'clawd'), 'a file, not a folder');
    for (const ready of [true, false]) {
      expect(await plan(ready)).toMatchObject({ action: 'conflict', reason: `${join(root, 'clawd')} is a file, not a folder: ${file.to} cannot be made inside it` });
    }
  });

  it('replaces different content, saying only that it differs, after keeping the local file in the backups (owner-only)', async () => {
    await writeFile(file.from, SECRET);
    await mkdir(join(root, 'clawd'));
    await writeFile(file.to, 'R2_SECRET_ACCESS_KEY=old-do-not-print-me', { mode: 0o644 });
    const action = (await plan())!;
    expect(action.changes).toEqual([
      { field: 'content', before: 'differs', after: 'from the mount' },
      { field: 'local', before: file.to, after: 'kept aside in the backups' },
      { field: 'mode', before: '0644', after: '0600' },
    ]);
    expectNoSecret(action);
    const { outcome } = await apply(action);
    expectNoSecret(outcome);
    expect(await readFile(file.to, 'utf8')).toBe(SECRET);
    const kept = /kept in (.+)$/.exec(outcome.notes?.[0] ?? '')?.[1];
    expect(kept).toMatch(new RegExp(`^${root}/\\.persist-backups/file\\.credentials-\\.credentials\\.env-\\d{8}T\\d{6}Z/\\.credentials\\.env$`));
    expect(await readFile(kept!, 'utf8')).toBe('R2_SECRET_ACCESS_KEY=old-do-not-print-me');
    expect((await stat(kept!)).mode & 0o777).toBe(0o600);
    expect((await stat(join(kept!, '..'))).mode & 0o777).toBe(0o700);
    expect(await plan()).toBeNull();
  });

  it('detects a same-size change by content', async () => {
    await writeFile(file.from, 'AAAA');
    await mkdir(join(root, 'clawd'));
    await writeFile(file.to, 'BBBB', { mode: 0o600 });
    expect((await plan())!.changes[0]).toEqual({ field: 'content', before: 'differs', after: 'from the mount' });
  });

  it('a mode-only difference is a chmod', async () => {
    await writeFile(file.from, SECRET);
    await mkdir(join(root, 'clawd'));
    await writeFile(file.to, SECRET);
    await chmod(file.to, 0o644);
    const action = (await plan())!;
    expect(action.changes).toEqual([{ field: 'mode', before: '0644', after: '0600' }]);
    const { outcome, writes } = await apply(action);
    expect(outcome.summary).toBe('mode set to 0600');
    expect(writes).toEqual([{ method: 'chmod', path: file.to }]);
    expect((await stat(file.to)).mode & 0o777).toBe(0o600);
    expect(await plan()).toBeNull();
  });

  it('a file missing from the mount is a conflict, and a local copy is kept', async () => {
    const missingBoth = (await plan())!;
    expect(missingBoth.action).toBe('conflict');
    expect(missingBoth.conflict?.message).toBe(`nothing to restore: ${file.from} does not exist in the mount`);
    await mkdir(join(root, 'clawd'));
    await writeFile(file.to, SECRET, { mode: 0o600 });
    const localOnly = (await plan())!;
    expect(localOnly.action).toBe('conflict');
    expect(localOnly.conflict?.fix).toContain(`cp ${file.to} ${file.from}`);
    await expect(apply({ ...localOnly, action: 'restore' })).rejects.toThrow(/does not exist in the mount/);
    expect(await readFile(file.to, 'utf8')).toBe(SECRET);
  });

  it('a symlink at the local path is a conflict, never written through', async () => {
    await writeFile(file.from, SECRET);
    await mkdir(join(root, 'clawd'));
    await writeFile(join(root, 'elsewhere'), 'untouched');
    await symlink(join(root, 'elsewhere'), file.to);
    const action = (await plan())!;
    expect(action.action).toBe('conflict');
    expect(action.conflict?.message).toBe(`${file.to} is a symlink, not a regular file`);
    expect(await readFile(join(root, 'elsewhere'), 'utf8')).toBe('untouched');
  });

  it('an unready mount means restore, decided after the mount', async () => {
    const action = (await plan(false))!;
    expect(action.action).toBe('restore');
    expect(action.reason).toContain('once mount.data is up');
    await writeFile(file.from, SECRET);
    await apply(action);
    expect(await readFile(file.to, 'utf8')).toBe(SECRET);
  });
});

describe('diffFile', () => {
  const observed = (o: Partial<FileObserved>): FileObserved => ({ source: { state: 'file', size: 3, mode: 0o644 }, local: { state: 'file', size: 3, mode: 0o600 }, sameContent: true, ...o });
  const resource: ResolvedFile = { name: 'c', bucket: 'data', relFrom: 'c', from: '/m/c', to: '/l/c', mode: 0o600 };

  it('equal content and mode: nothing', () => {
    expect(diffFile(resource, observed({}), { allowShrink: false })).toBeNull();
  });

  it('a folder in the mount is a conflict', () => {
    expect(diffFile(resource, observed({ source: { state: 'not-file', found: 'dir' }, sameContent: null }), { allowShrink: false })?.conflict?.message).toBe('/m/c in the mount is a dir, not a regular file');
  });

  it('different content and mode: both shown, no values', () => {
    expect(diffFile(resource, observed({ local: { state: 'file', size: 3, mode: 0o666 }, sameContent: false }), { allowShrink: false })?.changes).toEqual([
      { field: 'content', before: 'differs', after: 'from the mount' },
      { field: 'local', before: resource.to, after: 'kept aside in the backups' },
      { field: 'mode', before: '0666', after: '0600' },
    ]);
  });
});
