// Build once before the suite so that CLI tests run the bundle of the current sources; point
// TMPDIR at a fresh folder for the run (test workers and the CLI processes they start inherit it),
// and at the end fail loudly when a test left anything in it (tests must remove what they made).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeFolder } from './helpers/remove.js';

export default function setup(): () => void {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  const outer = process.env.TMPDIR;
  const runDir = mkdtempSync(join(tmpdir(), 'persist-test-run-'));
  chmodSync(runDir, 0o755); // tests that drop root still reach the CLI copies inside
  process.env.TMPDIR = runDir;
  return () => {
    if (outer === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outer;
    const left = readdirSync(runDir).sort();
    if (left.length === 0) {
      rmdirSync(runDir);
      return;
    }
    const kept = left.filter((name) => !removeFolder(join(runDir, name)));
    if (kept.length === 0) rmdirSync(runDir);
    const listing = left.map((name) => `  ${name}${kept.includes(name) ? '  (still mounted inside: not removed)' : ''}`).join('\n');
    const message = `the tests left ${left.length} entr${left.length === 1 ? 'y' : 'ies'} in TMPDIR (${runDir}); every test must remove what it makes:\n${listing}`;
    console.error(`\n${'!'.repeat(80)}\n${message}\n${'!'.repeat(80)}\n`);
    throw new Error(message);
  };
}
