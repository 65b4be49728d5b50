// What a killed rollback or detach was building beside the local folder (QA: a hidden
// `<folder>.persist-rollback-<hex>` or `.persist-detach-<hex>` stayed in the workspace after the
// next plan/apply, named by nothing) is removed by the next run that takes the lock (an apply
// with nothing else to do takes it for that): its name
// carries the dead pid, and a marker in the state folder names it (host/state-leftovers.ts).
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { converge, makeFixture, sleep, type Fixture } from './helpers.js';

function leftovers(folder: string): string[] {
  return readdirSync(dirname(folder)).filter((name) => name.startsWith(`${basename(folder)}.persist-`));
}

/** Start the CLI, SIGKILL it as soon as a `<folder>.persist-<kind>-` entry appears; returns its name. */
async function killWhileBuilding(f: Fixture, args: string[], folder: string, kind: string): Promise<string> {
  const running = f.start(args, { timeoutMs: 120_000 });
  for (;;) {
    const found = leftovers(folder).find((name) => name.startsWith(`${basename(folder)}.persist-${kind}-`));
    if (found) {
      await sleep(30); // a few files into it
      running.child.kill('SIGKILL');
      await running.done;
      return found;
    }
    if (running.child.exitCode !== null) throw new Error(`the CLI ended before building: ${running.output().stdout}${running.output().stderr}`);
    await sleep(2);
  }
}

describe('what a killed rollback or detach leaves beside the folder', () => {
  it('a killed rollback: the next apply, even one with nothing else to do, takes the lock and removes its building folder; the folder stays as it was', async () => {
    const f = makeFixture({ sync: true });
    const state = join(f.dir, 'state');
    mkdirSync(join(state, 'many'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(state, 'many', `f${i}.txt`), `one ${i}\n`);
    await converge(f);
    writeFileSync(join(state, 'app.db'), 'rows two\n');
    await converge(f);

    const name = await killWhileBuilding(f, ['rollback', 'sync.state', '--to', '1', '--auto-approve'], state, 'rollback');
    expect(leftovers(state)).toContain(name);
    expect(readFileSync(join(state, 'app.db'), 'utf8')).toBe('rows two\n');
    // status names it until then (a plan takes no lock).
    expect((await f.run(['plan'])).stdout).toContain('No changes');
    const shown = await f.run(['status']);
    expect(shown.stdout).toContain(`Left by a killed rollback, detach or restore (the folder it was replacing is intact):\n  ${join(dirname(state), name)}\n`);
    expect(JSON.parse((await f.run(['status', '--json'])).stdout).killedRunFolders).toEqual([join(dirname(state), name)]);

    // An apply with nothing else to do takes the lock for it (a machine that only boots would keep it
    // for good otherwise): the dead run's folder goes, said after "No changes".
    const swept = await f.run(['apply', '--auto-approve']);
    expect(swept.code, swept.stdout + swept.stderr).toBe(0);
    expect(swept.stdout).toContain(`No changes. The machine matches the spec.\nRemoved 1 folder a killed rollback, detach or restore left beside a local folder:\n  ${join(dirname(state), name)}\n`);
    expect(leftovers(state)).toEqual([]);
    expect(name).toMatch(/^state\.persist-rollback-\d+-[0-9a-f]{8}$/);
    expect(readdirSync(join(f.stateDir, 'building'))).toEqual([]);
    expect(readFileSync(join(state, 'app.db'), 'utf8')).toBe('rows two\n');
    expect((await f.run(['apply', '--auto-approve'])).stdout).not.toContain('Removed');

    writeFileSync(join(state, 'app.db'), 'rows three\n');
    const applied = await f.run(['apply', '--auto-approve']);
    expect(applied.code, applied.stdout + applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/sync\.state/);
    expect(readFileSync(join(state, 'app.db'), 'utf8')).toBe('rows three\n');
    // And a rollback run to its end leaves nothing either.
    const rolled = await f.run(['rollback', 'sync.state', '--to', '1', '--auto-approve'], { timeoutMs: 120_000 });
    expect(rolled.code, rolled.stdout + rolled.stderr).toBe(0);
    expect(readFileSync(join(state, 'app.db'), 'utf8')).toBe('rows\n');
    expect(leftovers(state)).toEqual([]);
    expect(readdirSync(join(f.stateDir, 'building'))).toEqual([]);
  }, 240_000);

  it('a killed detach: clean removes its building folder and says so; the next detach detaches', async () => {
    const f = makeFixture({ links: ['memory'] });
    await converge(f);
    mkdirSync(join(f.target('memory'), 'many'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(f.target('memory'), 'many', `f${i}.txt`), `note ${i}\n`);

    const name = await killWhileBuilding(f, ['detach', '--auto-approve'], f.link('memory'), 'detach');
    expect(leftovers(f.link('memory'))).toContain(name);
    expect(lstatSync(f.link('memory')).isSymbolicLink()).toBe(true);

    // clean takes the lock, which removes it: clean says so.
    const cleaned = await f.run(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.stdout + cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toContain(`Removed 1 folder a killed rollback, detach or restore left beside a local folder:\n  ${join(dirname(f.link('memory')), name)}\n`);
    expect(leftovers(f.link('memory'))).toEqual([]);

    const done = await f.run(['detach', '--auto-approve'], { timeoutMs: 120_000 });
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(leftovers(f.link('memory'))).toEqual([]);
    expect(name).toMatch(/^memory\.persist-detach-\d+-[0-9a-f]{8}$/);
    expect(lstatSync(f.link('memory')).isDirectory()).toBe(true);
    expect(readFileSync(join(f.link('memory'), 'many', 'f2999.txt'), 'utf8')).toBe('note 2999\n');
  }, 240_000);
});
