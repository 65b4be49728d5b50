// Durability figures (issue 11): (1) the time from the agent's write through a link (file closed)
// to the object being complete at the server, per backend, median of 20; (2) what persist's
// durable wait costs on an apply that adopts 1,000 small files through rclone (the wait's share,
// as the executor reports it per action: "in the store after X: N uploaded files checked there").
//
//   node bench/durable.mjs [writes] [files]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './lib.mjs';
import { fuseMissing, inSandbox, persistEnv, runPersist, s3fsBucketYaml, startS3rver, track } from './s3.mjs';

const writes = Number(process.argv[2] ?? 20);
const files = Number(process.argv[3] ?? 1000);

function spec(server, backend, bucket, mnt, writeBack) {
  let yaml = `version: 1\nworkspace: ./ws\n${s3fsBucketYaml(server, bucket, mnt).replace('backend: s3fs', `backend: ${backend}`)}`;
  if (backend === 'rclone') yaml += `      options: { writeBack: ${writeBack} }\n`;
  return `${yaml}links:\n  memory: workspace/memory\n`;
}

async function writeToStore(server, dir, backend) {
  const bucket = `bench-durable-${backend}`;
  await server.createBucket?.(bucket);
  const root = join(dir, backend);
  const mnt = join(root, 'mnt');
  mkdirSync(join(root, 'ws'), { recursive: true });
  writeFileSync(join(root, 'persist.yaml'), spec(server, backend, bucket, mnt, '1s'));
  track(mnt);
  const env = persistEnv(join(root, 'state'));
  runPersist(['apply', '--auto-approve', '-f', join(root, 'persist.yaml')], env);
  const times = [];
  for (let i = 0; i < writes; i++) {
    const key = `workspace/memory/w-${i}.md`;
    const marker = join(server.directory, bucket, `${key}._S3rver_metadata.json`);
    const start = process.hrtime.bigint();
    writeFileSync(join(root, 'ws', 'memory', `w-${i}.md`), `write ${i}\n`);
    while (!existsSync(marker)) await new Promise((resolve) => setTimeout(resolve, 5));
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  runPersist(['shutdown', '-f', join(root, 'persist.yaml')], env);
  return times;
}

function adoptCost(server, dir) {
  const bucket = 'bench-durable-adopt';
  const root = join(dir, 'adopt');
  const mnt = join(root, 'mnt');
  mkdirSync(join(root, 'ws', 'memory'), { recursive: true });
  for (let i = 0; i < files; i++) {
    const folder = join(root, 'ws', 'memory', `d${Math.floor(i / 50)}`);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, `f${i}.md`), `small file ${i}\n`);
  }
  writeFileSync(join(root, 'persist.yaml'), spec(server, 'rclone', bucket, mnt, '1s'));
  track(mnt);
  const env = persistEnv(join(root, 'state'));
  const { ms, stdout } = runPersist(['apply', '--auto-approve', '-f', join(root, 'persist.yaml')], env);
  const line = stdout.split('\n').find((l) => l.startsWith('✔') && l.includes('link.memory'));
  const waited = /in the store after ([\d.]+) (ms|s)/.exec(line ?? '');
  const waitedMs = waited ? Number(waited[1]) * (waited[2] === 's' ? 1000 : 1) : NaN;
  runPersist(['shutdown', '-f', join(root, 'persist.yaml')], env);
  return { ms, waitedMs, line };
}

const missing = fuseMissing(['s3fs', 'rclone']);
if (missing.length) {
  console.log(`SKIP durable: ${missing.join('; ')}`);
  process.exit(0);
}
await inSandbox('persist-bench-durable-', async (dir) => {
  const server = await startS3rver(['bench-durable-s3fs', 'bench-durable-rclone', 'bench-durable-adopt']);
  console.log(`time from the agent's write (file closed) to the object at the server, median of ${writes}:`);
  for (const backend of ['s3fs', 'rclone']) {
    const times = await writeToStore(server, dir, backend);
    console.log(`  ${backend.padEnd(8)} ${median(times).toFixed(0).padStart(6)} ms  (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)}${backend === 'rclone' ? ', writeBack 1s' : ', uploaded on close'})`);
  }
  const { ms, waitedMs, line } = adoptCost(server, dir);
  console.log(`adopt of ${files} small files through rclone (writeBack 1s): apply ${(ms / 1000).toFixed(1)} s, of which the durable wait ${(waitedMs / 1000).toFixed(1)} s (${((100 * waitedMs) / ms).toFixed(0)}%)`);
  console.log(`  ${line?.trim()}`);
});
