// The folders a rollback or detach builds beside a local folder, named in a marker in the state
// folder (host/state-leftovers.ts): a dead pid's are removed at the lock (removeDeadTemporaries),
// a live pid's and any path whose name does not carry the marker's pid are never touched, and a
// link set aside by a detach killed between its two renames is put back in place.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealHost } from '../../src/host/real.js';
import { buildingPath, deadBuildings, markBuilding, removeDeadTemporaries } from '../../src/host/state-leftovers.js';

const host = new RealHost();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratch(): { ws: string; state: string } {
  const dir = mkdtempSync(join(tmpdir(), 'persist-building-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'ws'));
  mkdirSync(join(dir, 'state'));
  return { ws: join(dir, 'ws'), state: join(dir, 'state') };
}

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

function marker(state: string, pid: number, paths: string[]): void {
  mkdirSync(join(state, 'building'), { recursive: true });
  writeFileSync(join(state, 'building', `${pid}-0123abcd.json`), `${JSON.stringify({ pid, paths })}\n`);
}

describe('building folders of a killed rollback or detach', () => {
  it("a killed bundle restore's repo built beside the repo folder is removed too", async () => {
    const { ws, state } = scratch();
    const pid = deadPid();
    const staging = join(ws, `.repo.persist-restore-${pid}-0000000a`);
    mkdirSync(join(staging, '.git', 'objects'), { recursive: true });
    mkdirSync(join(ws, 'repo'));
    marker(state, pid, [staging]);
    expect(await removeDeadTemporaries(host, state)).toEqual([staging]);
    expect(readdirSync(ws)).toEqual(['repo']);
  });

  it('buildingPath names a restore beside a hidden name as the marker rule reads it', () => {
    expect(buildingPath(host, join('/w', '.repo'), 'restore')).toMatch(new RegExp(`^/w/\\.repo\\.persist-restore-${process.pid}-[0-9a-f]{8}$`));
  });

  it("a dead run's folders are removed, a link it set aside is put back, the marker goes", async () => {
    const { ws, state } = scratch();
    const pid = deadPid();
    const rollback = join(ws, `state.persist-rollback-${pid}-00000001`);
    const detach = join(ws, `memory.persist-detach-${pid}-00000002`);
    const aside = join(ws, `memory.persist-detach-link-${pid}-00000003`);
    mkdirSync(join(rollback, 'deep'), { recursive: true });
    writeFileSync(join(rollback, 'deep', 'a.txt'), 'a');
    mkdirSync(detach);
    symlinkSync('/somewhere/in/the/mount', aside); // killed between the swap's two renames: ws/memory is missing
    marker(state, pid, [rollback, detach, aside]);

    // Listed without a change (for a command that shows leftovers without the lock)...
    expect((await deadBuildings(host, state)).sort()).toEqual([aside, detach, rollback].sort());
    expect(existsSync(rollback)).toBe(true);
    // ...and removed by the next run holding the lock.
    const removed = await removeDeadTemporaries(host, state);
    expect(removed.sort()).toEqual([aside, detach, rollback].sort());
    expect(readdirSync(ws).sort()).toEqual(['memory']);
    expect(lstatSync(join(ws, 'memory')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(ws, 'memory'))).toBe('/somewhere/in/the/mount');
    expect(readdirSync(join(state, 'building'))).toEqual([]);
  });

  it("a live run's folders stay; a path not carrying the marker's pid is never touched", async () => {
    const { ws, state } = scratch();
    const live = join(ws, `state.persist-rollback-${process.pid}-00000001`);
    mkdirSync(live);
    marker(state, process.pid, [live]);
    const pid = deadPid();
    const foreign = join(ws, 'state'); // a marker naming the real folder (damaged, or written by hand)
    mkdirSync(foreign);
    marker(state, pid, [foreign, join(ws, `state.persist-rollback-${pid + 1}-00000001`)]);
    mkdirSync(join(ws, `state.persist-rollback-${pid + 1}-00000001`));

    expect(await deadBuildings(host, state)).toEqual([]);
    await removeDeadTemporaries(host, state);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(foreign)).toBe(true);
    expect(existsSync(join(ws, `state.persist-rollback-${pid + 1}-00000001`))).toBe(true);
  });

  it('markBuilding names the paths, its returned function drops the marker', async () => {
    const { ws, state } = scratch();
    const path = buildingPath(host, join(ws, 'state'), 'rollback');
    expect(path).toMatch(new RegExp(`/state\\.persist-rollback-${process.pid}-[0-9a-f]{8}$`));
    const unmark = await markBuilding(host, state, [path]);
    expect(readdirSync(join(state, 'building'))).toHaveLength(1);
    await unmark();
    expect(readdirSync(join(state, 'building'))).toEqual([]);
  });
});
