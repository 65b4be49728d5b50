// `persist watch` through the built CLI: without --auto-approve it only reports drift; with it, it
// applies the safe actions (a missing link, a restore into an empty place) and leaves the unsafe
// ones (a conflict, a relink) to a person. SIGTERM stops it cleanly with exit 0.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commit, converge, makeFixture, sleep, snapshotTree, treeChanges, until } from './helpers.js';

const STAMP = /^\[\d{4}-\d\d-\d\dT[\d:.]+Z round \d+\] /;

describe('persist watch', () => {
  it('without --auto-approve reports drift every interval and changes nothing; SIGTERM stops it', async () => {
    const f = makeFixture({ links: ['memory', 'notes'] });
    await converge(f);
    unlinkSync(f.link('memory'));
    const before = snapshotTree(f.dir);
    const run = f.start(['watch', '--interval', '1s']);
    await run.waitFor('drift:');
    await sleep(2500);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const drifts = result.stdout.split('\n').filter((l) => STAMP.test(l) && l.endsWith('] drift:'));
    expect(drifts.length).toBeGreaterThanOrEqual(2);
    expect(result.stdout).toContain('1. + link.memory  create');
    expect(result.stdout).not.toContain('link.notes');
    expect(result.stdout.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`${STAMP.source}stopped$`));
    expect(treeChanges(before, snapshotTree(f.dir))).toEqual([]);
  });

  it('with --auto-approve creates a missing link and restores a missing file, but leaves a conflict and a relink alone', async () => {
    const f = makeFixture({ links: ['memory', 'notes', 'logs'], file: true });
    await converge(f);
    const run = f.start(['watch', '--interval', '1s', '--auto-approve']);
    await run.waitFor(/\] no changes$/m);

    // Drift of both kinds at once: safe (a link gone, the restored file gone) and unsafe.
    unlinkSync(f.link('memory'));
    rmSync(join(f.workspace, 'creds.env'));
    unlinkSync(f.link('notes'));
    writeFileSync(f.link('notes'), 'not a link\n');
    unlinkSync(f.link('logs'));
    symlinkSync(f.dir, f.link('logs'));

    const creds = join(f.workspace, 'creds.env');
    await until(() => existsSync(f.link('memory')) && existsSync(creds), 'watch recreated the link and restored the file');
    // A round that logs after this point began after the safe actions were done: it must find only
    // the unsafe ones left, and apply nothing.
    const done = run.output().stdout.length;
    const unsafeLeft = /\] needs a person \(not applied\): link\.notes conflict: [^\n]* is a regular file [^\n]*, link\.logs relink$/m;
    await run.waitFor((stdout) => unsafeLeft.test(stdout.slice(done)), 5000);
    const settled = done + unsafeLeft.exec(run.output().stdout.slice(done))!.index;
    await sleep(300);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stdout.trimEnd().split('\n').at(-1)).toMatch(/\] stopped$/);
    expect(result.stdout).toMatch(/^✔ \d+\. \+ link\.memory {2}create: created the link$/m);
    expect(result.stdout).toMatch(/^✔ \d+\. <= file\.creds {2}restore: /m);
    expect(result.stdout).not.toMatch(/link\.(notes|logs) {2}(conflict|relink):/);
    expect(result.stdout.slice(settled)).not.toMatch(/\] applied /);

    expect(readlinkSync(f.link('memory'))).toBe(f.target('memory'));
    expect(readFileSync(creds, 'utf8')).toBe('TOKEN=abc\n');
    expect(readFileSync(f.link('notes'), 'utf8')).toBe('not a link\n');
    expect(readlinkSync(f.link('logs'))).toBe(f.dir);
  });

  it('with --auto-approve saves a new commit and an uncommitted edit into the bundle within one interval, and pushes a changed sync', async () => {
    const f = makeFixture({ bundle: true, sync: true });
    await converge(f);
    const repo = join(f.dir, 'repo');
    const bundleFile = join(f.bucket, 'bundles', 'repo.bundle');
    const heads = () => execFileSync('git', ['bundle', 'list-heads', bundleFile], { encoding: 'utf8' });
    const run = f.start(['watch', '--interval', '1s', '--auto-approve']);
    await run.waitFor(/\] no changes$/m);

    commit(repo, 'notes.md', 'a new commit\n');
    writeFileSync(join(repo, 'README.md'), '# repo, edited but not committed\n');
    writeFileSync(join(f.dir, 'state', 'app.db'), 'more rows\n');
    const head = execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const started = Date.now();
    await until(() => heads().includes(`${head} refs/heads/main`) && heads().includes('refs/persist/worktree'), 'watch saved the commit and the work tree', 15_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${run.output().stdout}`);
    });
    await until(() => existsSync(join(f.bucket, 'state', 'app.db')) && readFileSync(join(f.bucket, 'state', 'app.db'), 'utf8') === 'more rows\n', 'watch pushed the sync', 15_000);
    const savedWithin = Date.now() - started;
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^✔ \d+\. ~ bundle\.repo {2}update: /m);
    expect(result.stdout).toMatch(/\] applied \d+, failed 0, skipped \d+: .*bundle\.repo update/m);
    expect(savedWithin).toBeLessThan(15_000);
  });

  it('rejects an interval under one second', async () => {
    const f = makeFixture({ links: ['memory'] });
    const result = await f.run(['watch', '--interval', '200ms']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('persist: --interval must be at least 1s\n');
  });
});
