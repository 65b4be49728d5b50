// One sync of many small files through an s3fs mount of s3rver on loopback, at 20,000 and at
// 100,000 files (issue 14): the time of a no-change `persist plan` against `rclone check` of the
// same folder and mirror, and a 1-file push (`persist apply`) with the manifest bytes it read from
// the server (GET responses on the manifest's keys, headers included). The plan and the push
// should cost at most in proportion to the files (the walk of the local folder), and the push
// should read less than 1 MiB of manifest: its root and the shards it lacks, not the whole
// manifest (~15 MiB at 100,000 files).
//
// Set-up per size, not timed: the folder is pushed once into a `local` bucket (a folder), that
// mirror (files and manifest) is copied straight into s3rver's store, and an s3fs mount of it must
// then plan "No changes" (the state folder gets the same machine id, so lineage sees its own push).
// Usage: node bench/sync-100k.mjs [sizes, e.g. 20000,100000] [rounds]
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { median } from './lib.mjs';
import { fillerText, formatBytes, fuseMissing, inSandbox, persistEnv, runPersist, s3fsBucketYaml, S3RVER_KEY, startS3rver, track, unmount, writeTree } from './s3.mjs';

const sizes = (process.argv[2] ?? '20000,100000').split(',').map(Number);
const rounds = Number(process.argv[3] ?? 3);

const missing = fuseMissing(['s3fs', 'rclone']);
if (missing.length) {
  console.log(`SKIP sync-100k: ${missing.join('; ')}`);
  process.exit(0);
}

/** The history's keys first: its copy of the replaced shard reads that shard through the mount. */
const CLASSES = { history: '/\\.persist-sync/generations(/|$)', manifest: '/\\.persist-sync(\\.json|/)', other: '.' };
const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

function rcloneCheck(server, local, remote) {
  const env = {
    ...process.env,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: S3RVER_KEY,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: S3RVER_KEY,
  };
  delete env.AWS_CA_BUNDLE;
  const start = process.hrtime.bigint();
  // --fast-list: one recursive listing (s3rver's delimiter listings leave out folders that hold only folders).
  const result = spawnSync('rclone', ['check', '--fast-list', '--exclude', '.persist-sync*', '--exclude', '.persist-sync/**', '--exclude', '.persist-folders.json', local, `bench:${remote}`], { env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`rclone check exited ${result.status}: ${result.stderr.slice(-2000)}`);
  return ms;
}

function spec(bucketYaml, from) {
  return `version: 1\n${bucketYaml}syncs:\n  tree: { from: ${from}, to: tree }\n`;
}

const results = [];
await inSandbox('persist-bench-100k-', async (dir) => {
  const server = await startS3rver(sizes.map((size) => `bench-${size}`), CLASSES);
  console.log(`load average before: ${load()}`);
  for (const size of sizes) {
    const bucket = `bench-${size}`;
    const local = join(dir, `local-${size}`);
    const paths = writeTree(local, size);

    // Converge on a `local` bucket, then copy its mirror into s3rver.
    const seedState = join(dir, `seed-state-${size}`);
    const seedSpec = join(dir, `seed-${size}.yaml`);
    writeFileSync(seedSpec, spec(`buckets:\n  data:\n    name: ${bucket}\n    mount: { backend: local, path: ./seed-${size} }\n`, local));
    const seeded = runPersist(['apply', '-f', seedSpec, '--auto-approve'], persistEnv(seedState));
    const { count } = await server.seed(bucket, 'tree/', join(dir, `seed-${size}`, 'tree'));

    const mountPath = join(dir, `mnt-${size}`);
    track(mountPath);
    const state = join(dir, `state-${size}`);
    mkdirSync(state, { recursive: true });
    copyFileSync(join(seedState, 'machine-id'), join(state, 'machine-id'));
    const env = persistEnv(state);
    const specFile = join(dir, `s3fs-${size}.yaml`);
    writeFileSync(specFile, spec(s3fsBucketYaml(server, bucket, mountPath, { transfers: 'mount' }), local));
    runPersist(['apply', '-f', specFile, '--auto-approve', '--target', 'mount.data'], env);
    const first = runPersist(['plan', '-f', specFile], env);
    if (!first.stdout.includes('No changes')) throw new Error(`the seeded mirror is not converged:\n${first.stdout}`);

    const planTimes = [];
    const checkTimes = [];
    for (let i = 0; i < rounds; i++) {
      planTimes.push(runPersist(['plan', '-f', specFile], env).ms);
      checkTimes.push(rcloneCheck(server, local, `${bucket}/tree`));
    }
    // A machine that pushed before has its copy of the manifest; this state folder only planned so
    // far (plan writes nothing, not even that copy): one push first, not measured.
    writeFileSync(paths[1], fillerText(499_999, 2000));
    runPersist(['apply', '-f', specFile, '--auto-approve'], env);
    const pushes = [];
    for (let i = 0; i < rounds; i++) {
      writeFileSync(paths[(i * 7919) % paths.length], fillerText(500_000 + i, 2000));
      await server.resetTraffic();
      const { ms, stdout } = runPersist(['apply', '-f', specFile, '--auto-approve'], env);
      if (!/copied 1 file/.test(stdout)) throw new Error(`expected a 1-file push:\n${stdout}`);
      pushes.push({ ms, traffic: await server.traffic() });
    }
    const after = runPersist(['plan', '-f', specFile], env).stdout;
    if (!after.includes('No changes')) throw new Error(`the pushes did not converge:\n${after}`);
    await unmount(mountPath);
    const middle = [...pushes].sort((a, b) => a.ms - b.ms)[Math.floor(pushes.length / 2)];
    const manifestTraffic = middle.traffic.classes.manifest ?? { requests: {}, getResponseBytes: 0 };
    const historyTraffic = middle.traffic.classes.history ?? { requests: {}, getResponseBytes: 0 };
    const manifestBytes = spawnSync('du', ['-sb', join(dir, `seed-${size}`, 'tree', '.persist-sync')], { encoding: 'utf8' }).stdout.split('\t')[0];
    results.push({
      size,
      seedSeconds: seeded.ms / 1000,
      objects: count,
      manifestBytes: Number(manifestBytes),
      planMs: median(planTimes),
      checkMs: median(checkTimes),
      pushMs: median(pushes.map((p) => p.ms)),
      pushRequests: Object.values(middle.traffic.requests).reduce((a, b) => a + b, 0),
      manifestRead: manifestTraffic.getResponseBytes,
      manifestRequests: manifestTraffic.requests,
      historyRead: historyTraffic.getResponseBytes,
      historyRequests: historyTraffic.requests,
    });
    console.log(`${size} files: done (load ${load()})`);
  }
});

console.log(`sync of N files of 1-4 KiB through s3fs 1.90 -> s3rver on loopback; medians of ${rounds}`);
for (const r of results) {
  console.log(`N = ${r.size} (${r.objects} objects; manifest shards ${formatBytes(r.manifestBytes)}; first push on a local bucket ${r.seedSeconds.toFixed(0)} s):`);
  console.log(`  persist plan, no change           ${(r.planMs / 1000).toFixed(2).padStart(7)} s   baseline rclone check --fast-list ${(r.checkMs / 1000).toFixed(2)} s  (${(r.planMs / r.checkMs).toFixed(2)}x)`);
  console.log(`  persist apply, 1 file changed      ${(r.pushMs / 1000).toFixed(2).padStart(7)} s   ${r.pushRequests} requests; manifest read: ${formatBytes(r.manifestRead)} in ${JSON.stringify(r.manifestRequests)}`);
  console.log(`    of which history (.persist-sync/generations/): ${JSON.stringify(r.historyRequests)}, ${formatBytes(r.historyRead)} read`);
}
if (results.length === 2) {
  const [small, big] = results;
  const files = big.size / small.size;
  console.log(`${big.size} vs ${small.size} files (${files}x): plan ${(big.planMs / small.planMs).toFixed(2)}x, 1-file push ${(big.pushMs / small.pushMs).toFixed(2)}x, rclone check ${(big.checkMs / small.checkMs).toFixed(2)}x`);
}
console.log(`manifest read by the 1-file push at ${results.at(-1).size} files: ${formatBytes(results.at(-1).manifestRead)} ${results.at(-1).manifestRead < 1024 * 1024 ? 'ok' : 'OVER'} (limit 1 MiB)`);
console.log(`load average after: ${load()}`);
