// SIGTERM/SIGINT during apply: the current action finishes or stops safely, the rest is skipped, the
// summary is printed, the exit code is 1, and the next apply converges with nothing lost.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

const LINKS = Array.from({ length: 200 }, (_, i) => `l${i}`);

/** Fill `dir` with `folders` x `files` random files; returns relative path -> sha256. */
function fill(dir: string, folders: number, files: number): Map<string, string> {
  const hashes = new Map<string, string>();
  for (let d = 0; d < folders; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let i = 0; i < files; i++) {
      const data = randomBytes(2048);
      writeFileSync(join(dir, `d${d}`, `f${i}`), data);
      hashes.set(`d${d}/f${i}`, createHash('sha256').update(data).digest('hex'));
    }
  }
  return hashes;
}

function hashesOf(dir: string): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    hashes.set(relative(dir, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
  }
  return hashes;
}

const summary = /^Apply complete: (\d+) applied, (\d+) failed, (\d+) skipped\.$/m;

describe('signals during apply', () => {
  it('SIGTERM between link actions: exit 1, summary with skipped actions, the next apply converges', async () => {
    const f = makeFixture({ links: LINKS });
    const run = f.start(['apply', '--auto-approve']);
    await run.waitFor('✔ 2. + link.l0  create');
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SIGTERM: finishing the current action, then stopping.');
    const [, applied, failed, skipped] = summary.exec(result.stdout)!.map(Number);
    expect(failed).toBe(0);
    expect(skipped).toBeGreaterThan(0);
    expect(applied! + skipped!).toBe(201);
    expect(result.stdout).toMatch(/^↓ \d+\. \+ link\.l\d+ {2}create: interrupted before it started$/m);

    const again = await f.run(['apply', '--auto-approve']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`Apply complete: ${skipped} applied, 0 failed, 0 skipped.`);
    for (const name of LINKS) expect(readlinkSync(f.link(name))).toBe(f.target(name));
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('SIGTERM during a large adopt: the adopt stops safely, nothing is lost, the next apply finishes it', async () => {
    const f = makeFixture({ links: ['big', ...LINKS.slice(0, 20)] });
    const original = fill(f.link('big'), 10, 100);
    const run = f.start(['apply', '--auto-approve']);
    // The blank line after the plan is printed once the signal handlers are in place.
    await run.waitFor('to restore.\n\n');
    await new Promise((resolve) => setTimeout(resolve, 150));
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^✖ 2\. ~ link\.big {2}adopt: adopt of .* interrupted; nothing is lost, run apply again to finish it$/m);
    expect(summary.exec(result.stdout)!.slice(1).map(Number)).toEqual([1, 1, 20]);

    const again = await f.run(['apply', '--auto-approve']);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(readlinkSync(f.link('big'))).toBe(f.target('big'));
    expect(hashesOf(f.target('big'))).toEqual(original);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('SIGINT works the same way', async () => {
    const f = makeFixture({ links: LINKS });
    const run = f.start(['apply', '--auto-approve']);
    await run.waitFor('✔ 2. + link.l0  create');
    run.child.kill('SIGINT');
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SIGINT: finishing the current action, then stopping.');
    expect(summary.test(result.stdout)).toBe(true);
    expect((await f.run(['apply', '--auto-approve'])).code).toBe(0);
    expect((await f.run(['plan', '--detailed-exitcode'])).code).toBe(0);
  });
});
