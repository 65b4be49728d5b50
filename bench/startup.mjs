// Start-up benchmark: `persist validate` of specs/moltbot.yaml and `persist plan` of a converged
// local spec (5 links, 1 bundle, 1 sync, 1 file; and 500 links), each against `node -e 0` measured
// in the same run, interleaved. The converged specs are made by `persist apply`, which leaves the
// spec's parse in the state folder's cache as on a real machine (see src/spec/cache.ts).
// Usage: node bench/startup.mjs [rounds]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interleave, row } from './lib.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'bin', 'persist.js');
const rounds = Number(process.argv[2] ?? 30);
const node = process.execPath;

function convergedSpec(dir, links) {
  const ws = join(dir, 'workspace');
  const repo = join(dir, 'repo');
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'db.sqlite'), 'x'.repeat(4096));
  mkdirSync(repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  writeFileSync(join(repo, 'README.md'), 'bench\n');
  execFileSync('git', ['-C', repo, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'init', '--allow-empty']);
  mkdirSync(join(dir, 'bucket'), { recursive: true });
  writeFileSync(join(dir, 'bucket', 'credentials.env'), 'TOKEN=x\n');
  const linkLines = Array.from({ length: links }, (_, i) => `  l${i}: workspace/l${i}`).join('\n');
  const spec = `version: 1
workspace: ./workspace
buckets:
  data:
    name: bench
    mount: { backend: local, path: ./bucket }
links:
${linkLines}
bundles:
  repo: { repo: ./repo, file: bundles/repo.bundle }
syncs:
  state: { from: ./state, to: state }
files:
  credentials: { from: credentials.env, to: ./workspace-files/credentials.env, mode: "0600" }
`;
  mkdirSync(ws, { recursive: true });
  const file = join(dir, 'persist.yaml');
  writeFileSync(file, spec);
  const env = { ...process.env, PERSIST_STATE_DIR: join(dir, '.state') };
  execFileSync(node, [cli, 'apply', '-f', file, '--auto-approve'], { env, stdio: 'pipe' });
  const check = execFileSync(node, [cli, 'plan', '-f', file, '--detailed-exitcode'], { env, encoding: 'utf8' });
  if (!check.includes('No changes')) throw new Error(`bench spec did not converge:\n${check}`);
  return { file, env };
}

const dir = mkdtempSync(join(tmpdir(), 'persist-bench-'));
try {
  const small = convergedSpec(join(dir, 'five'), 5);
  const large = convergedSpec(join(dir, 'many'), 500);
  const moltbotEnv = { ...process.env, CF_ACCOUNT_ID: 'bench', R2_ACCESS_KEY_ID: 'bench', R2_SECRET_ACCESS_KEY: 'bench' };
  const results = interleave(
    [
      { name: 'node -e 0', command: node, args: ['-e', '0'] },
      { name: 'persist validate -f specs/moltbot.yaml', command: node, args: [cli, 'validate', '-f', join(root, 'specs/moltbot.yaml')], options: { env: moltbotEnv, expectStatus: 0 } },
      { name: 'persist plan (converged, 5 links)', command: node, args: [cli, 'plan', '-f', small.file], options: { env: small.env, expectStatus: 0 } },
      { name: 'persist plan (converged, 500 links)', command: node, args: [cli, 'plan', '-f', large.file], options: { env: large.env, expectStatus: 0 } },
    ],
    rounds,
  );
  const base = results['node -e 0'];
  console.log(`start-up, median of ${rounds} interleaved runs, node ${process.version}`);
  console.log(row('node -e 0 (baseline)', base, base));
  console.log(row('persist validate -f specs/moltbot.yaml', results['persist validate -f specs/moltbot.yaml'], base, 1.6));
  console.log(row('persist plan (converged, 5 links)', results['persist plan (converged, 5 links)'], base, 2.0));
  console.log(row('persist plan (converged, 500 links)', results['persist plan (converged, 500 links)'], base));
  const ratio = results['persist plan (converged, 500 links)'] / results['persist plan (converged, 5 links)'];
  console.log(`500 links vs 5 links: ${ratio.toFixed(2)}x ${ratio <= 1.5 ? 'ok' : 'OVER'} (limit 1.5x)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
