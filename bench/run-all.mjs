// Run every benchmark one after another (never in parallel: they would skew each other's
// timings) and write bench/RESULTS.md: the machine, then each benchmark's report, where every
// figure stands next to its baseline measured in the same run.
// Usage: node bench/run-all.mjs [name...]   (names: startup git-status sync-push cold-restore api-vs-rclone http-client-cpu mounted-transfers mount-push sync-100k racy-plan)
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

const BENCHMARKS = [
  { name: 'startup', file: 'startup.mjs', title: 'Start-up: validate and plan against `node -e 0`' },
  { name: 'git-status', file: 'git-status.mjs', title: '`git status`: repo on local disk (data linked into s3fs) vs repo inside the s3fs mount' },
  { name: 'sync-push', file: 'sync-push.mjs', title: 'Sync push of one changed file vs rewriting the whole tree' },
  { name: 'cold-restore', file: 'cold-restore.mjs', title: 'Cold restore of a whole workspace in a new container' },
  { name: 'api-vs-rclone', file: 'api-vs-rclone.mjs', title: 'S3 API store vs `rclone copy --transfers 16`, and appending to a large file' },
  { name: 'http-client-cpu', file: 'http-client-cpu.mjs', title: 'CPU a request by HTTP client: node:http, persist\'s S3 client, a minimal one, rclone' },
  { name: 'mounted-transfers', file: 'mounted-transfers.mjs', title: 'Files in flight through a FUSE mount (s3fs, rclone)' },
  { name: 'mount-push', file: 'mount-push.mjs', title: 'First push of a 1,000-file sync through s3fs vs `rclone copy`, and what history costs a push' },
  { name: 'sync-100k', file: 'sync-100k.mjs', title: 'One sync of 20,000 and 100,000 files: no-change plan and 1-file push vs `rclone check`' },
  { name: 'racy-plan', file: 'racy-plan.mjs', title: 'Plan after a save of a tree written just before it (racily clean files)' },
];

function firstLine(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) return 'not installed';
  return `${result.stdout}${result.stderr}`.split('\n').find((line) => line.trim())?.trim() ?? 'unknown';
}

const loadAverage = () => loadavg().map((load) => load.toFixed(2)).join(' ');

function machine(loadBefore) {
  const cpu = cpus();
  return [
    `- date: ${new Date().toISOString()}`,
    `- cpus: ${firstLine('nproc', [])} (nproc), ${cpu[0]?.model ?? 'unknown model'}`,
    `- memory: ${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- kernel: Linux ${release()}`,
    `- node: ${process.version}`,
    `- git: ${firstLine('git', ['--version'])}`,
    `- s3fs: ${firstLine('s3fs', ['--version'])}`,
    `- rclone: ${firstLine('rclone', ['version'])}`,
    `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAverage()} (other work on the machine slows every figure; the ratios suffer less)`,
  ].join('\n');
}

/** Run one benchmark, echoing its output live; resolves to {status, output, seconds}. */
function run(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(here, file)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
      process.stderr.write(chunk);
    });
    child.on('close', (status) => resolve({ status, output: output.trimEnd(), seconds: (Date.now() - started) / 1000 }));
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !BENCHMARKS.some((b) => b.name === name));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  process.exit(1);
}
const selected = wanted.length ? BENCHMARKS.filter((b) => wanted.includes(b.name)) : BENCHMARKS;

const loadBefore = loadAverage();
const sections = [];
let failed = 0;
for (const bench of selected) {
  console.log(`\n== ${bench.name} (node bench/${bench.file})`);
  const { status, output, seconds } = await run(bench.file);
  if (status !== 0) failed++;
  const verdict = status === 0 ? '' : `\n**FAILED** (exit ${status}); its output is below.\n`;
  sections.push(`## ${bench.title}\n\n\`node bench/${bench.file}\`, ${seconds.toFixed(0)} s${verdict}\n\n\`\`\`\n${output}\n\`\`\``);
}

const results = `# Benchmark results

Written by \`node bench/run-all.mjs\`; see bench/README.md for what each figure means.

${machine(loadBefore)}

${sections.join('\n\n')}
`;
const target = join(here, 'RESULTS.md');
writeFileSync(target, results);
console.log(`\nwrote ${target}${failed ? `; ${failed} benchmark(s) FAILED` : ''}`);
process.exit(failed ? 1 : 0);
