// A plan after a sync's first save of a tree written just before it (racily clean files, docs/
// architecture.md): every plan hashes the files whose mtime lies within the file system's
// timestamp tick of the last push's start, until the next push. Two trees of N files of 1-8 KiB
// plus a 30 MiB file, each saved into a `local` bucket: one right after it was written, one 2.5 s
// after (no file racy on any file system). Then `persist plan` of each, interleaved with
// `node -e 0`, medians. On a file system with nanosecond times (100 ms tick) the two plans cost
// the same; with a 2 s tick the first hashes the whole tree at every plan.
// Usage: npm run build && node bench/racy-plan.mjs [rounds=10] [files=2000]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, timeOnce } from './lib.mjs';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const cli = join(repo, 'bin', 'persist.js');
const rounds = Number(process.argv[2] ?? 10);
const files = Number(process.argv[3] ?? 2000);
const root = mkdtempSync(join(tmpdir(), 'persist-bench-racy-'));

function writeTree(dir) {
  for (let i = 0; i < files; i++) {
    mkdirSync(join(dir, `d${i % 20}`), { recursive: true });
    writeFileSync(join(dir, `d${i % 20}`, `f${i}.txt`), randomBytes(1024 + ((i * 7919) % 7168)));
  }
  writeFileSync(join(dir, 'big.bin'), randomBytes(30 * 1024 * 1024));
}

/** A spec with one sync of `name` into a `local` bucket, saved `waitMs` after its tree was written. */
async function saved(name, waitMs) {
  const dir = join(root, name);
  writeTree(join(dir, 'tree'));
  writeFileSync(join(dir, 'persist.yaml'), `version: 1\nbuckets:\n  data:\n    name: bench\n    mount: { backend: local, path: ./bucket }\nsyncs:\n  tree: { from: ./tree, to: tree }\n`);
  const env = { ...process.env, PERSIST_STATE_DIR: join(dir, '.state') };
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  execFileSync(process.execPath, [cli, 'apply', '-f', join(dir, 'persist.yaml'), '--auto-approve'], { env, stdio: 'pipe' });
  const args = [cli, 'plan', '-f', join(dir, 'persist.yaml')];
  const check = execFileSync(process.execPath, args, { env, encoding: 'utf8' });
  if (!check.includes('No changes')) throw new Error(`${name} did not converge:\n${check}`);
  return { name, args, options: { env, expectStatus: 0 } };
}

try {
  const cases = [
    { name: 'node -e 0', args: ['-e', '0'], options: {} },
    await saved('saved right after it was written', 0),
    await saved('saved 2.5 s after it was written', 2500),
  ];
  const times = Object.fromEntries(cases.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) for (const c of cases) times[c.name].push(timeOnce(process.execPath, c.args, c.options));
  const base = median(times['node -e 0']);
  console.log(`persist plan of a converged sync (${files.toLocaleString('en')} files of 1-8 KiB + 30 MiB, local bucket), median of ${rounds} interleaved rounds:`);
  for (const c of cases) console.log(`| ${c.name} | ${median(times[c.name]).toFixed(0)} ms | ${(median(times[c.name]) / base).toFixed(2)}x node -e 0 |`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
