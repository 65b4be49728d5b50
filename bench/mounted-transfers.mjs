// How many files a sync should move at once through a FUSE mount (src/store/limit.ts,
// DEFAULT_TRANSFERS): the first push of a sync of small files (1-4 KiB) into an s3fs and an
// rclone mount of s3rver on loopback, with 1, 2, 3, 4 and 16 files in flight (`PERSIST_TRANSFERS`;
// every call into a FUSE mount takes one of the 4 threads of Node's pool while the daemon answers,
// so more than 4 in flight only queue). Each variant pushes a copy of the same tree
// into its own folder of the mounted bucket; the order of the variants turns each round; medians.
// The apply includes the durable wait (rclone: its upload queue empty, checked at the server).
// Usage: npm run build && node bench/mounted-transfers.mjs [files=400] [rounds=2] [backends=s3fs,rclone]
import { cpSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { median } from './lib.mjs';
import { describeTraffic, fuseMissing, inSandbox, persistEnv, runPersist, startS3rver, track, writeTree } from './s3.mjs';

const files = Number(process.argv[2] ?? 400);
const rounds = Number(process.argv[3] ?? 2);
const backends = (process.argv[4] ?? 's3fs,rclone').split(',');
const VARIANTS = [
  { name: '1 at a time', env: { PERSIST_TRANSFERS: '1' } },
  { name: '2 at a time', env: { PERSIST_TRANSFERS: '2' } },
  { name: '3 at a time', env: { PERSIST_TRANSFERS: '3' } },
  { name: '4 at a time', env: { PERSIST_TRANSFERS: '4' } },
  { name: '16 at a time', env: { PERSIST_TRANSFERS: '16' } },
];

const missing = fuseMissing(backends);
if (missing.length) {
  console.log(`SKIP mounted-transfers: ${missing.join('; ')}`);
  process.exit(0);
}

function bucketYaml(server, backend, mountPath) {
  return [
    'buckets:',
    '  data:',
    `    name: bench-${backend}`,
    `    endpoint: ${server.endpoint}`,
    '    region: us-east-1',
    '    pathStyle: true',
    '    provider: other',
    '    credentials:',
    '      accessKeyId: ${env:BENCH_S3_KEY}',
    '      secretAccessKey: ${env:BENCH_S3_SECRET}',
    '    mount:',
    `      backend: ${backend}`,
    `      path: ${mountPath}`,
    ...(backend === 'rclone' ? ['      options:', '        writeBack: 1s'] : []),
  ].join('\n');
}

const loads = [loadavg()[0]];
await inSandbox('persist-bench-mounted-', async (dir) => {
  const server = await startS3rver(backends.map((backend) => `bench-${backend}`));
  const tree = join(dir, 'tree');
  writeTree(tree, files);
  for (const backend of backends) {
    const mountPath = join(dir, `mnt-${backend}`);
    track(mountPath);
    const env = persistEnv(join(dir, `state-${backend}`));
    const times = Object.fromEntries(VARIANTS.map((variant) => [variant.name, []]));
    const traffic = {};
    for (let round = 1; round <= rounds; round++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const variant = VARIANTS[(i + round) % VARIANTS.length];
        const index = VARIANTS.indexOf(variant);
        const name = `r${round}v${index}`;
        // A copy of the tree of its own: a folder is synced with one mirror only (lineage).
        cpSync(tree, join(dir, backend, name), { recursive: true });
        const spec = join(dir, `${backend}-${name}.yaml`);
        writeFileSync(spec, `version: 1\n${bucketYaml(server, backend, mountPath)}\nsyncs:\n  ${name}: { from: ./${backend}/${name}, to: ${name} }\n`);
        if (round === 1 && i === 0) runPersist(['apply', '--auto-approve', '-f', spec, '--target', 'mount.data'], env); // mount once, untimed
        await server.resetTraffic();
        times[variant.name].push(runPersist(['apply', '--auto-approve', '-f', spec], { ...env, ...variant.env }).ms);
        traffic[variant.name] = await server.traffic();
      }
      loads.push(loadavg()[0]);
    }
    const base = median(times['1 at a time']);
    console.log(`${backend}: first push of a sync of ${files} files (1-4 KiB) into the mount, median of ${rounds}`);
    for (const variant of VARIANTS) {
      const ms = median(times[variant.name]);
      console.log(`  ${variant.name.padEnd(26)} ${(ms / 1000).toFixed(1).padStart(6)} s  ${(base / ms).toFixed(2)}x faster than 1 at a time   (${times[variant.name].map((t) => (t / 1000).toFixed(1)).join(' / ')})`);
    }
    console.log(`  requests at the server (16 at a time, last round): ${describeTraffic(traffic['16 at a time'])}`);
  }
});
console.log(`load average (1 min) at the start and after each round: ${loads.map((l) => l.toFixed(1)).join(', ')}`);
