// A new container: how long the cold `persist apply --auto-approve` takes to bring the whole
// workspace back from the bucket (mount, clone the repo from its bundle, restore the synced
// folder and the credentials file, recreate the links), on an s3fs mount of s3rver on loopback.
// Workspace: a git repo of 1,000 files (the workspace itself, as /root/clawd), memory/config/logs
// linked into the bucket (1,000 files), a synced folder with a 20 MiB SQLite-like database and
// 200 small files, and a credentials file. Usage: node bench/cold-restore.mjs [repoFiles] [rounds]
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './lib.mjs';
import {
  describeTraffic,
  formatBytes,
  inSandbox,
  makeRepo,
  persistEnv,
  runPersist,
  s3fsBucketYaml,
  skipUnlessFuse,
  startS3rver,
  track,
  unmount,
  writeTree,
} from './s3.mjs';

skipUnlessFuse('cold-restore');

const repoFiles = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 2);
const DATABASE_BYTES = 20 * 1024 * 1024;

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
const head = (repo) => execFileSync('git', ['-C', repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
const countFiles = (dir) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;

/** A SQLite-shaped file: the magic header, then pages of incompressible data. */
function writeDatabase(path) {
  const data = randomBytes(DATABASE_BYTES);
  data.write('SQLite format 3\0', 0, 'latin1');
  writeFileSync(path, data);
}

await inSandbox('persist-bench-cold-', async (dir) => {
  const mountPath = join(dir, 'mnt');
  const server = await startS3rver(['bench-cold']);
  const workspace = join(dir, 'clawd');
  const clawdbot = join(dir, 'clawdbot');
  const stateDir = join(dir, 'state');
  const env = persistEnv(stateDir);

  // The agent's machine before its first apply.
  makeRepo(workspace, repoFiles, 10);
  writeFileSync(join(workspace, '.gitignore'), '/memory\n/config\n/logs\n/.credentials.env\n');
  execFileSync('git', ['-C', workspace, '-c', 'user.name=b', '-c', 'user.email=b@b', 'add', '.gitignore']);
  execFileSync('git', ['-C', workspace, '-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-qm', 'ignore data']);
  for (const [name, count] of [['memory', 400], ['config', 100], ['logs', 500]]) writeTree(join(workspace, name), count, { prefix: name, perFolder: 25 });
  mkdirSync(clawdbot);
  writeDatabase(join(clawdbot, 'state.sqlite'));
  writeTree(join(clawdbot, 'devices'), 200, { prefix: 'device', perFolder: 40 });

  const spec = join(dir, 'persist.yaml');
  writeFileSync(
    spec,
    `version: 1
workspace: ./clawd
${s3fsBucketYaml(server, 'bench-cold', mountPath, { transfers: 'mount' })}links:
  memory: workspace/memory
  config: workspace/config
  logs: workspace/logs
bundles:
  clawd: { repo: ./clawd, file: workspace/clawd-backup.bundle, keep: 2 }
syncs:
  clawdbot: { from: ./clawdbot, to: clawdbot, delete: true, exclude: ["*.lock", "*.tmp"] }
files:
  credentials: { from: .credentials.env, to: ./clawd/.credentials.env, mode: "0600" }
`,
  );

  // Converge once: mount, put the credentials into the bucket, adopt the data folders, push.
  track(mountPath);
  runPersist(['apply', '-f', spec, '--auto-approve', '--target', 'mount.data'], env);
  writeFileSync(join(mountPath, '.credentials.env'), 'API_TOKEN=bench-not-a-secret\n');
  const converge = runPersist(['apply', '-f', spec, '--auto-approve'], env);
  const converged = runPersist(['plan', '-f', spec], env).stdout;
  if (!converged.includes('No changes')) throw new Error(`the first apply did not converge:\n${converged}`);
  const expected = {
    head: head(workspace),
    database: sha256(join(clawdbot, 'state.sqlite')),
    clawdbotFiles: countFiles(clawdbot),
    memoryFiles: countFiles(join(workspace, 'memory')),
  };
  const bundleBytes = statSync(join(mountPath, 'workspace', 'clawd-backup.bundle')).size;

  const results = [];
  for (let round = 0; round < rounds; round++) {
    // A new container: nothing mounted, no workspace, no synced folder, no persist state.
    await unmount(mountPath);
    for (const path of [workspace, clawdbot, stateDir]) rmSync(path, { recursive: true, force: true });
    await server.resetTraffic();
    const cold = runPersist(['apply', '-f', spec, '--auto-approve'], env);
    const traffic = await server.traffic();
    const restored = {
      head: head(workspace),
      database: sha256(join(clawdbot, 'state.sqlite')),
      clawdbotFiles: countFiles(clawdbot),
      memoryFiles: countFiles(join(workspace, 'memory')),
    };
    if (JSON.stringify(restored) !== JSON.stringify(expected)) {
      throw new Error(`the restore differs: expected ${JSON.stringify(expected)}, got ${JSON.stringify(restored)}`);
    }
    if (readFileSync(join(workspace, '.credentials.env'), 'utf8') !== 'API_TOKEN=bench-not-a-secret\n') throw new Error('credentials not restored');
    const after = runPersist(['plan', '-f', spec], env).stdout;
    if (!after.includes('No changes')) throw new Error(`the cold apply did not converge:\n${after}`);
    results.push({ ms: cold.ms, traffic });
  }

  console.log(`cold restore on s3fs 1.90 -> s3rver on loopback: repo of ${repoFiles + 1} files (bundle ${formatBytes(bundleBytes)}),`);
  console.log(`3 linked folders with 1000 files, a sync of a ${formatBytes(DATABASE_BYTES)} database + 200 files, a credentials file`);
  console.log(`  first apply (mount, adopt 3 folders, bundle, push)   ${(converge.ms / 1000).toFixed(1).padStart(7)} s`);
  console.log(`  cold apply (mount + restore everything), median of ${rounds}: ${(median(results.map((r) => r.ms)) / 1000).toFixed(1).padStart(7)} s`);
  console.log(`    read ${formatBytes(median(results.map((r) => r.traffic.getResponseBytes)))} in ${results[0].traffic.requests.GET ?? 0} GETs; ${describeTraffic(results[0].traffic)}`);
  console.log(`  restored and verified: HEAD ${expected.head.slice(0, 12)}, database sha256 equal, ${expected.clawdbotFiles} synced files, ${expected.memoryFiles} memory files via the link; plan: no changes`);
});
