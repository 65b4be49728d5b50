// A sync of many small files, one file changed: `persist apply` pushes the changed file, the
// manifest's shard that lists it and the manifest's root, where a whole-tree copy (what
// `rsync -r --no-times` does over s3fs, since it cannot trust the mount's mtimes) rewrites every
// file. Two parts, each against its baseline in the same run:
//   1. `local` backend, 10,000 files: time of the push vs `cp -r` of the tree into the mirror,
//      and bytes of the mirror files each one rewrote (files whose ctime moved);
//   2. s3fs mount of s3rver on loopback, 2,000 files by default (s3rver stores ~60 files/s, so
//      seeding and copying 10,000 would take minutes): bytes the server receives in PUT bodies
//      for the push vs for copying every file into the mirror.
// Usage: node bench/sync-push.mjs [files] [s3fsFiles] [rounds]
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { median, timeOnce } from './lib.mjs';
import {
  describeTraffic,
  fillerText,
  formatBytes,
  fuseMissing,
  inSandbox,
  persistEnv,
  runPersist,
  s3fsBucketYaml,
  startS3rver,
  track,
  writeTree,
} from './s3.mjs';

const fileCount = Number(process.argv[2] ?? 10_000);
const s3fsFileCount = Number(process.argv[3] ?? 2_000);
const rounds = Number(process.argv[4] ?? 5);
const SEED_CONCURRENCY = 16;

/** Bytes of the regular files under `dir` whose inode changed at or after `sinceMs` (all when 0). */
function treeBytes(dir, sinceMs = 0) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const stat = statSync(join(entry.parentPath ?? entry.path, entry.name));
    if (stat.ctimeMs >= sinceMs) total += stat.size;
  }
  return total;
}

/** Bytes of a mirror's manifest: the root `.persist-sync.json` and its shards in `.persist-sync/`. */
function manifestSize(mirrorDir) {
  return statSync(join(mirrorDir, '.persist-sync.json')).size + treeBytes(join(mirrorDir, '.persist-sync'));
}

/** Run `operation` and return the bytes of the files it rewrote under `dir` (by ctime). */
function rewrittenBytes(dir, operation) {
  const since = Date.now();
  execFileSync('sleep', ['0.02']); // file times come from a coarse clock that may lag a tick
  const result = operation();
  return { result, bytes: treeBytes(dir, since) };
}

/** Copy every file of `from` into `to`, `concurrency` at a time (s3fs serves requests in parallel). */
async function copyTreeParallel(from, to, concurrency) {
  const files = (await readdir(from, { withFileTypes: true, recursive: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name).slice(from.length + 1));
  const folders = [...new Set(files.map((file) => join(to, file, '..')))].sort();
  for (const folder of folders) await mkdir(folder, { recursive: true });
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++];
      await copyFile(join(from, file), join(to, file));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return files.length;
}

function syncSpec(bucketYaml, from = './local') {
  return `version: 1
${bucketYaml}syncs:
  mirror: { from: ${from}, to: mirror }
`;
}

await inSandbox('persist-bench-sync-', async (dir) => {
  const local = join(dir, 'local');
  const paths = writeTree(local, fileCount);
  const sourceBytes = treeBytes(local);
  let edits = 0;
  const changeOneFile = () => writeFileSync(paths[(edits++ * 7919) % paths.length], fillerText(100_000 + edits, 2500));

  // Part 1: time on the local backend.
  const localSpec = join(dir, 'local.yaml');
  writeFileSync(localSpec, syncSpec(`buckets:\n  data:\n    name: bench-sync\n    mount: { backend: local, path: ./bucket }\n`));
  const localEnv = persistEnv(join(dir, 'state-local'));
  const converge = runPersist(['apply', '-f', localSpec, '--auto-approve'], localEnv);
  const mirror = join(dir, 'bucket', 'mirror');
  const manifestBytes = manifestSize(mirror);
  const baselineCopy = ['-r', `${local}/.`, mirror];
  execFileSync('cp', baselineCopy); // warm: later copies overwrite, as rsync would
  const pushTimes = [];
  const copyTimes = [];
  const pushWritten = [];
  const copyWritten = [];
  for (let i = 0; i < rounds; i++) {
    changeOneFile();
    const push = rewrittenBytes(mirror, () => runPersist(['apply', '-f', localSpec, '--auto-approve'], localEnv).ms);
    pushTimes.push(push.result);
    pushWritten.push(push.bytes);
    const copy = rewrittenBytes(mirror, () => timeOnce('cp', baselineCopy, { expectStatus: 0 }));
    copyTimes.push(copy.result);
    copyWritten.push(copy.bytes);
  }
  const check = runPersist(['plan', '-f', localSpec], localEnv).stdout;
  if (!check.includes('No changes')) throw new Error(`the local sync did not converge:\n${check}`);

  console.log(`sync of ${fileCount} files of 1-4 KiB (${formatBytes(sourceBytes)}); manifest ${formatBytes(manifestBytes)}`);
  console.log(`local backend, median of ${rounds} rounds, 1 file changed per round:`);
  console.log(`  first apply (push of all ${fileCount} files)       ${(converge.ms / 1000).toFixed(1).padStart(8)} s`);
  console.log(`  persist apply (push 1 changed file)        ${median(pushTimes).toFixed(0).padStart(8)} ms, ${formatBytes(median(pushWritten))} rewritten in the mirror`);
  console.log(`  baseline: cp -r of the whole tree          ${median(copyTimes).toFixed(0).padStart(8)} ms, ${formatBytes(median(copyWritten))} rewritten in the mirror`);
  console.log(`  bytes rewritten, baseline/persist: ${(median(copyWritten) / median(pushWritten)).toFixed(1)}x`);

  // Part 2: bytes over s3fs.
  const missing = fuseMissing();
  if (missing.length) {
    console.log(`SKIP s3fs part (bytes written): ${missing.join('; ')}`);
  } else {
    const server = await startS3rver(['bench-sync']);
    // A smaller tree of its own, converged on the local backend first.
    const s3Local = join(dir, 's3fs-local');
    const s3Paths = writeTree(s3Local, s3fsFileCount);
    const s3SourceBytes = treeBytes(s3Local);
    const seedSpec = join(dir, 's3fs-seed.yaml');
    writeFileSync(seedSpec, syncSpec(`buckets:\n  data:\n    name: bench-seed\n    mount: { backend: local, path: ./seed-bucket }\n`, './s3fs-local'));
    runPersist(['apply', '-f', seedSpec, '--auto-approve'], persistEnv(join(dir, 'state-seed')));
    const seedMirror = join(dir, 'seed-bucket', 'mirror');
    const s3ManifestBytes = manifestSize(seedMirror);
    let s3Edits = 0;
    const changeOneS3File = () => writeFileSync(s3Paths[(s3Edits++ * 7919) % s3Paths.length], fillerText(200_000 + s3Edits, 2500));
    const mountPath = join(dir, 'mnt');
    const s3Spec = join(dir, 's3fs.yaml');
    writeFileSync(s3Spec, syncSpec(s3fsBucketYaml(server, 'bench-sync', mountPath, { transfers: 'mount' }), './s3fs-local'));
    const s3Env = persistEnv(join(dir, 'state-s3fs'));
    track(mountPath);
    runPersist(['apply', '-f', s3Spec, '--auto-approve', '--target', 'mount.data'], s3Env);
    // Seed the bucket with the mirror persist converged above (files and manifest), in parallel:
    // s3rver takes ~15 ms a file, so persist's own sequential first push would take minutes.
    const seedStart = Date.now();
    await copyTreeParallel(seedMirror, join(mountPath, 'mirror'), SEED_CONCURRENCY);
    const seedSeconds = (Date.now() - seedStart) / 1000;
    // The seeded generation was written by another state folder: lineage restores it here once
    // (every local file already has its size, time and mode, so nothing is copied) and records it.
    runPersist(['apply', '-f', s3Spec, '--auto-approve'], s3Env);
    const seeded = runPersist(['plan', '-f', s3Spec], s3Env).stdout;
    if (!seeded.includes('No changes')) throw new Error(`the seeded s3fs mirror is not converged:\n${seeded}`);

    const pushes = [];
    for (let i = 0; i < Math.min(rounds, 3); i++) {
      changeOneS3File();
      await server.resetTraffic();
      const { ms } = runPersist(['apply', '-f', s3Spec, '--auto-approve'], s3Env);
      pushes.push({ ms, traffic: await server.traffic() });
    }
    const afterPush = runPersist(['plan', '-f', s3Spec], s3Env).stdout;
    if (!afterPush.includes('No changes')) throw new Error(`the s3fs sync did not converge:\n${afterPush}`);

    await server.resetTraffic();
    const copyStart = Date.now();
    const copied = await copyTreeParallel(s3Local, join(mountPath, 'mirror'), SEED_CONCURRENCY);
    const copySeconds = (Date.now() - copyStart) / 1000;
    const copyTraffic = await server.traffic();

    const pushBytes = median(pushes.map((p) => p.traffic.putBodyBytes));
    const copyBytes = copyTraffic.putBodyBytes;
    console.log(`s3fs 1.90 -> s3rver on loopback, a sync of ${s3fsFileCount} files (${formatBytes(s3SourceBytes)}; manifest ${formatBytes(s3ManifestBytes)}):`);
    console.log(`  (bucket seeded with the mirror persist converged on local disk, in ${seedSeconds.toFixed(0)} s)`);
    console.log(`  persist apply (push 1 changed file), median of ${pushes.length}: ${(median(pushes.map((p) => p.ms)) / 1000).toFixed(2)} s, ${formatBytes(pushBytes)} uploaded`);
    console.log(`    requests: ${describeTraffic(pushes[0].traffic)}`);
    const total = (traffic) => Object.values(traffic.requests).reduce((sum, count) => sum + count, 0);
    const withHistory = median(pushes.map((p) => total(p.traffic)));
    const historyRequests = median(pushes.map((p) => p.traffic.history.requests));
    const historyBytes = median(pushes.map((p) => p.traffic.history.putBodyBytes));
    console.log(
      `    lineage history (keys under .persist-sync/generations/): ${historyRequests} of ${withHistory} requests, ${formatBytes(historyBytes)} of ${formatBytes(pushBytes)} uploaded; ` +
        `without it: ${withHistory - historyRequests} requests, ${formatBytes(pushBytes - historyBytes)}`,
    );
    console.log(`  baseline: copy every file (${copied}) into the mirror, ${SEED_CONCURRENCY} in parallel: ${copySeconds.toFixed(1)} s, ${formatBytes(copyBytes)} uploaded`);
    console.log(`    requests: ${describeTraffic(copyTraffic)}`);
    const ratio = copyBytes / pushBytes;
    console.log(`bytes uploaded, baseline/persist: ${ratio.toFixed(1)}x fewer with persist ${ratio >= 50 ? 'ok' : 'UNDER'} (goal 50x)`);
  }
});
