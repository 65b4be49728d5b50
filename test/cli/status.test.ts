// `persist status` through the built CLI: the health of every resource as text and JSON, on a
// converged and on a drifted machine, and that it writes nothing.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, converge, makeFixture, snapshotTree, treeChanges } from './helpers.js';

interface StatusRow {
  address: string;
  ok: boolean;
  state: string;
  facts: Record<string, unknown>;
}

function rows(stdout: string): Map<string, StatusRow> {
  const doc = JSON.parse(stdout) as { formatVersion: number; environment: string; resources: StatusRow[] };
  expect(doc.formatVersion).toBe(1);
  expect(doc.environment).toBe('default');
  return new Map(doc.resources.map((r) => [r.address, r]));
}

describe('persist status', () => {
  it('reports every resource healthy on a converged machine, and writes nothing', async () => {
    const f = makeFixture({ links: ['memory'], bundle: true, sync: true, file: true });
    await converge(f);
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: join(f.dir, 'repo'), encoding: 'utf8' }).trim();
    const before = snapshotTree(f.dir);

    const text = await f.run(['status']);
    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`persist status: environment "default" (${f.spec})`);
    expect(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual(['ok mount.data', 'ok bundle.repo', 'ok sync.state', 'ok file.creds', 'ok link.memory', 'ok lease.data']);
    expect(text.stdout).toContain(`is=-> ${f.target('memory')}`);
    expect(text.stdout).toContain(`head=${head.slice(0, 12)}`);
    expect(text.stdout).not.toContain('TOKEN=abc');

    const json = await f.run(['status', '--json']);
    expect(json.code).toBe(0);
    const byAddress = rows(json.stdout);
    expect([...byAddress.keys()]).toEqual(['mount.data', 'bundle.repo', 'sync.state', 'file.creds', 'link.memory', 'lease.data']);
    for (const row of byAddress.values()) expect(row).toMatchObject({ ok: true, state: 'ok' });
    expect(byAddress.get('mount.data')!.facts).toEqual({ backend: 'local', bucket: 'test-data', path: f.bucket });
    expect(byAddress.get('link.memory')!.facts).toEqual({ path: f.link('memory'), target: f.target('memory'), is: `-> ${f.target('memory')}` });
    expect(byAddress.get('bundle.repo')!.facts).toMatchObject({ refs: 1, head: head.slice(0, 12), size: expect.any(Number), age: expect.stringMatching(/^\d+s$/) });
    expect(byAddress.get('sync.state')!.facts).toMatchObject({ files: 1, lastPush: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(byAddress.get('file.creds')!.facts).toMatchObject({ to: join(f.workspace, 'creds.env'), mode: '0600' });
    // The lease: the file in the local bucket, held by this machine (the converging apply took it).
    const machine = readFileSync(join(f.stateDir, 'machine-id'), 'utf8').trim();
    expect(byAddress.get('lease.data')!.facts).toMatchObject({ lease: join(f.bucket, '.persist-lease.json'), holder: machine, thisMachine: true, expired: false, ttl: '60s' });
    expect(json.stdout).not.toContain('TOKEN=abc');

    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('reports drift (and a conflict) without changing anything, exit 0', async () => {
    const f = makeFixture({ links: ['memory', 'notes', 'logs'], bundle: true, sync: true, file: true });
    await converge(f);
    unlinkSync(f.link('memory'));
    unlinkSync(f.link('notes'));
    writeFileSync(f.link('notes'), 'a file where a link belongs\n');
    unlinkSync(f.link('logs'));
    symlinkSync('/tmp', f.link('logs'));
    commit(join(f.dir, 'repo'), 'next.txt', 'next\n');
    rmSync(join(f.workspace, 'creds.env'));
    const before = snapshotTree(f.dir);

    const text = await f.run(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^!! {2}link\.memory {2}needs create: /m);
    expect(text.stdout).toMatch(/^!! {2}link\.notes {2}conflict: .*is a regular file/m);
    expect(text.stdout).toMatch(/^!! {2}link\.logs {2}needs relink: the link points at \/tmp$/m);
    expect(text.stdout).toMatch(/^!! {2}bundle\.repo {2}needs update: /m);
    expect(text.stdout).toMatch(/^!! {2}file\.creds {2}needs restore: /m);
    expect(text.stdout).toMatch(/^ok {2}sync\.state /m);

    const byAddress = rows((await f.run(['status', '--json'])).stdout);
    expect(byAddress.get('link.memory')).toMatchObject({ ok: false, state: expect.stringMatching(/^needs create: /), facts: { is: 'missing' } });
    expect(byAddress.get('link.notes')).toMatchObject({ ok: false, state: expect.stringMatching(/^conflict: /), facts: { is: 'file' } });
    expect(byAddress.get('link.logs')).toMatchObject({ ok: false, facts: { is: '-> /tmp' } });
    expect(byAddress.get('file.creds')).toMatchObject({ ok: false, facts: { mode: null } });
    expect(byAddress.get('mount.data')).toMatchObject({ ok: true });
    expect(byAddress.get('sync.state')).toMatchObject({ ok: true });

    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('on a fresh machine (no bucket folder yet) says what is unknown and creates nothing', async () => {
    const f = makeFixture({ links: ['memory'], bundle: true, sync: true });
    const before = snapshotTree(f.dir);
    const byAddress = rows((await f.run(['status', '--json'])).stdout);
    expect(byAddress.get('mount.data')).toMatchObject({ ok: false, state: expect.stringMatching(/^needs mount: /) });
    expect(byAddress.get('bundle.repo')!.facts).toMatchObject({ bundle: 'unknown (mount not ready)' });
    expect(byAddress.get('sync.state')!.facts).toMatchObject({ mirror: 'unknown (mount not ready)' });
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('never says ok for a backup that does not exist: an empty repo and an empty sync folder are "nothing saved yet"', async () => {
    const f = makeFixture({ links: [], bundle: false, sync: false });
    writeFileSync(f.spec, ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', '    name: test-data', '    mount: { backend: local, path: ./bucket }', 'bundles:', '  repo: { repo: ./repo, file: repo.bundle }', 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    execFileSync('git', ['init', '-q', join(f.dir, 'repo')]);
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    // Nothing to do: plan says No changes ...
    const plan = await f.run(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain('No changes.');
    // ... but status does not call that saved.
    const text = await f.run(['status']);
    expect(text.stdout).toContain(`!!  bundle.repo  nothing saved yet: the repo ${join(f.dir, 'repo')} has no commits\n`);
    expect(text.stdout).toContain(`!!  sync.state  nothing saved yet: ${join(f.dir, 'state')} does not exist\n`);
    expect(text.stdout).toMatch(/^ok {2}mount\.data /m);
    const byAddress = rows((await f.run(['status', '--json'])).stdout);
    expect(byAddress.get('bundle.repo')).toMatchObject({ ok: false, state: `nothing saved yet: the repo ${join(f.dir, 'repo')} has no commits`, facts: { bundle: 'missing' } });
    expect(byAddress.get('sync.state')).toMatchObject({ ok: false, state: `nothing saved yet: ${join(f.dir, 'state')} does not exist` });
  });
});
