// Pushing through an s3fs mount (issue 14 item 5, issue 13's history figure), each against its
// baseline in the same run, on s3rver over loopback:
//   1. the first push of a sync of `files` small files (1-4 KiB) by `persist apply`, against
//      `rclone copy --transfers 16` of the same folder into the same server (rclone speaks the S3
//      API itself: no mount), with the requests each one made (persist with `transfers: mount`);
//      and the same push with the s3fs default (`transfers: api`: the mount is there, the data
//      goes over the S3 API), the figure behind that default (docs/backends.md);
//   2. a push of 1 changed file in a sync of `historyFiles` files, with its requests and bytes
//      split into those on the history's keys (`.persist-sync/generations/`), the manifest's and
//      the data's: what keeping the replaced file costs against the push itself.
// Usage: node bench/mount-push.mjs [files] [historyFiles] [rounds]
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { median } from './lib.mjs';
import { describeTraffic, fillerText, formatBytes, fuseMissing, inSandbox, persistEnv, runPersist, s3fsBucketYaml, S3RVER_KEY, startS3rver, track, writeTree } from './s3.mjs';

const fileCount = Number(process.argv[2] ?? 1_000);
const historyFileCount = Number(process.argv[3] ?? 2_000);
const rounds = Number(process.argv[4] ?? 1);

const missing = fuseMissing(['s3fs', 'rclone']);
if (missing.length) {
  console.log(`SKIP mount-push: ${missing.join('; ')}`);
  process.exit(0);
}

/** Requests per class of key: the history, the manifest (root, shards, folder modes), everything else. */
const CLASSES = {
  history: '/\\.persist-sync/generations(/|$)',
  manifest: '/(\\.persist-sync(\\.json|/)|\\.persist-folders\\.json)',
  data: '.',
};

function syncSpec(bucketYaml, from, to) {
  return `version: 1\n${bucketYaml}syncs:\n  tree: { from: ${from}, to: ${to} }\n`;
}

function rcloneEnv(server) {
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
  delete env.AWS_CA_BUNDLE; // rclone 1.60 fails before any I/O when it is set (docs/backends.md)
  return env;
}

function rcloneCopy(server, from, to) {
  const start = process.hrtime.bigint();
  const result = spawnSync('rclone', ['copy', '--transfers', '16', from, `bench:${to}`], { env: rcloneEnv(server), encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`rclone copy exited ${result.status}: ${result.stderr}`);
  return ms;
}

function perFile(traffic, files) {
  const total = Object.values(traffic.requests).reduce((a, b) => a + b, 0);
  return `${total} requests, ${(total / files).toFixed(1)} per file`;
}

function sumRequests(requests) {
  return Object.values(requests ?? {}).reduce((a, b) => a + b, 0);
}

const load = () => loadavg().map((v) => v.toFixed(2)).join(' ');

await inSandbox('persist-bench-mount-', async (dir) => {
  const server = await startS3rver(['bench-mount', 'bench-rclone'], CLASSES);
  const mountPath = join(dir, 'mnt');
  track(mountPath);
  const env = persistEnv(join(dir, 'state'));
  const bucketYaml = s3fsBucketYaml(server, 'bench-mount', mountPath, { transfers: 'mount' });
  const mountSpec = join(dir, 'mount.yaml');
  writeFileSync(mountSpec, `version: 1\n${bucketYaml}`);
  runPersist(['apply', '-f', mountSpec, '--auto-approve'], env);

  console.log(`load average before: ${load()}`);
  // Part 1: the first push of a sync, against rclone copy of the same folder.
  const persistTimes = [];
  const rcloneTimes = [];
  const apiTimes = [];
  let persistTraffic;
  let rcloneTraffic;
  let apiTraffic;
  // The default for an s3fs bucket with credentials (transfers: api): the same mount, data over the S3 API.
  const apiBucketYaml = s3fsBucketYaml(server, 'bench-mount', mountPath);
  for (let round = 0; round < rounds; round++) {
    const local = join(dir, `tree-${round}`);
    writeTree(local, fileCount);
    await server.resetTraffic();
    rcloneTimes.push(rcloneCopy(server, local, `bench-rclone/tree-${round}`));
    rcloneTraffic = await server.traffic();

    const spec = join(dir, `first-${round}.yaml`);
    writeFileSync(spec, syncSpec(bucketYaml, local, `tree-${round}`));
    await server.resetTraffic();
    persistTimes.push(runPersist(['apply', '-f', spec, '--auto-approve'], env).ms);
    persistTraffic = await server.traffic();
    const check = runPersist(['plan', '-f', spec], env).stdout;
    if (!check.includes('No changes')) throw new Error(`the first push did not converge:\n${check}`);

    const apiSpec = join(dir, `api-${round}.yaml`);
    writeFileSync(apiSpec, syncSpec(apiBucketYaml, local, `api-${round}`));
    const apiEnv = persistEnv(join(dir, `state-api-${round}`));
    await server.resetTraffic();
    apiTimes.push(runPersist(['apply', '-f', apiSpec, '--auto-approve'], apiEnv).ms);
    apiTraffic = await server.traffic();
  }
  const persistMs = median(persistTimes);
  const rcloneMs = median(rcloneTimes);
  const ratio = persistMs / rcloneMs;
  console.log(`first push of a sync of ${fileCount} files of 1-4 KiB, s3fs 1.90 -> s3rver on loopback, median of ${rounds}:`);
  console.log(`  persist apply (through s3fs)            ${(persistMs / 1000).toFixed(2).padStart(7)} s  ${perFile(persistTraffic, fileCount)}`);
  console.log(`    ${describeTraffic(persistTraffic)}`);
  console.log(`  baseline: rclone copy --transfers 16    ${(rcloneMs / 1000).toFixed(2).padStart(7)} s  ${perFile(rcloneTraffic, fileCount)}`);
  console.log(`    ${describeTraffic(rcloneTraffic)}`);
  console.log(`  persist / rclone: ${ratio.toFixed(2)}x ${ratio <= 3 ? 'ok' : 'OVER'} (goal 3x)`);
  const apiMs = median(apiTimes);
  console.log(`  persist apply (s3fs bucket, default transfers: api) ${(apiMs / 1000).toFixed(2)} s  ${perFile(apiTraffic, fileCount)}; ${(apiMs / rcloneMs).toFixed(2)}x rclone, ${(persistMs / apiMs).toFixed(2)}x faster than through s3fs`);
  console.log(`    ${describeTraffic(apiTraffic)}`);

  // Part 2: what history costs on a 1-file push.
  // Part 2 for both ways an s3fs bucket's data can go: through the mount, and over the API (default).
  const paths = writeTree(join(dir, 'history'), historyFileCount);
  for (const [way, yaml, key] of [['through s3fs (transfers: mount)', bucketYaml, 'history'], ['over the S3 API (s3fs default, transfers: api)', apiBucketYaml, 'history-api']]) {
    const spec = join(dir, `${key}.yaml`);
    writeFileSync(spec, syncSpec(yaml, join(dir, 'history'), key));
    const state = persistEnv(join(dir, `state-${key}`));
    const seeded = runPersist(['apply', '-f', spec, '--auto-approve'], state).ms;
    const pushes = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(paths[(i * 7919 + key.length) % paths.length], fillerText(300_000 + i + key.length, 2500));
      await server.resetTraffic();
      const { ms } = runPersist(['apply', '-f', spec, '--auto-approve'], state);
      pushes.push({ ms, traffic: await server.traffic() });
    }
    const middle = [...pushes].sort((a, b) => a.ms - b.ms)[1];
    const { history = { requests: {}, putBodyBytes: 0, getResponseBytes: 0 }, manifest = { requests: {}, putBodyBytes: 0 }, data = { requests: {}, putBodyBytes: 0 } } = middle.traffic.classes;
    const total = sumRequests(middle.traffic.requests);
    console.log(`push of 1 changed file in a sync of ${historyFileCount} files ${way} (first push ${(seeded / 1000).toFixed(1)} s), median of ${pushes.length}: ${(middle.ms / 1000).toFixed(2)} s`);
    console.log(`  all: ${total} requests, ${formatBytes(middle.traffic.putBodyBytes)} written; ${describeTraffic(middle.traffic)}`);
    console.log(`  history (.persist-sync/generations/): ${sumRequests(history.requests)} requests ${JSON.stringify(history.requests)}, ${formatBytes(history.putBodyBytes)} written`);
    console.log(`  manifest (root, shards, folder modes): ${sumRequests(manifest.requests)} requests ${JSON.stringify(manifest.requests)}, ${formatBytes(manifest.putBodyBytes)} written`);
    console.log(`  data and folders: ${sumRequests(data.requests)} requests ${JSON.stringify(data.requests)}, ${formatBytes(data.putBodyBytes)} written`);
  }
  console.log(`load average after: ${load()}`);
});
