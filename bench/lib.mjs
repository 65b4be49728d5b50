// Shared benchmark helpers: run commands interleaved (A, B, A, B...) so that machine noise hits
// every command alike, and report medians side by side with the baseline.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));

export function timeOnce(command, args, options = {}) {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (options.expectStatus !== undefined && result.status !== options.expectStatus) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}${result.stdout}`);
  }
  return ms;
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** cases: [{name, command, args, options}]; returns {name: median ms}. */
export function interleave(cases, rounds) {
  const times = Object.fromEntries(cases.map((c) => [c.name, []]));
  for (const c of cases) timeOnce(c.command, c.args, c.options); // warm the file cache
  for (let i = 0; i < rounds; i++) for (const c of cases) times[c.name].push(timeOnce(c.command, c.args, c.options));
  return Object.fromEntries(Object.entries(times).map(([name, list]) => [name, median(list)]));
}

/**
 * Paired rounds of two commands (a[i] and b[i] ran in the same round): the median of the ratios
 * a[i] / b[i], its 95% interval (a bootstrap over the rounds, seeded: the same figures give the same
 * interval) and how many rounds a was faster. An interval that holds 1.00 means the two could not be
 * told apart in this run; one wholly above (or below) 1.00 means a was slower (or faster).
 */
export function pairedRatio(a, b) {
  const ratios = a.map((ms, i) => ms / b[i]);
  let seed = 0x2545f491;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const medians = [];
  for (let draw = 0; draw < 2000; draw++) medians.push(median(ratios.map(() => ratios[Math.floor(random() * ratios.length)])));
  medians.sort((x, y) => x - y);
  return { median: median(ratios), low: medians[Math.floor(0.025 * medians.length)], high: medians[Math.ceil(0.975 * medians.length) - 1], faster: ratios.filter((r) => r < 1).length, rounds: ratios.length };
}

export function row(name, ms, baselineMs, limit) {
  const ratio = ms / baselineMs;
  const verdict = limit === undefined ? '' : ratio <= limit ? `  ok (limit ${limit}x)` : `  OVER (limit ${limit}x)`;
  return `${name.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms  ${ratio.toFixed(2).padStart(5)}x${verdict}`;
}

/**
 * `--pin` among `args` (2 cores or more): the server on core 0 and every client on the others,
 * through `taskset`. `pinned(cpus, command, args)` gives spawn's command and arguments.
 */
export function pinning(args) {
  const cores = availableParallelism();
  if (args.includes('--pin') && cores < 2) throw new Error('--pin needs 2 cores or more');
  const pin = args.includes('--pin') ? { server: '0', clients: `1-${cores - 1}` } : null;
  const pinned = (cpus, command, commandArgs) => (pin ? ['taskset', ['-c', cpus, command, ...commandArgs]] : [command, commandArgs]);
  return { cores, pin, pinned };
}

const S3_SOURCES = { server: 'test/helpers/s3server.ts', client: 'src/store/s3/client.ts', sigv4: 'src/store/s3/sigv4.ts' };

/** Bundles the strict test server and the named S3 client modules (`client`, `sigv4`) into bench/.tmp-s3store/ with esbuild; returns that folder. */
export async function bundleS3(modules) {
  const { build } = await import('esbuild');
  const bundled = join(repo, 'bench', '.tmp-s3store');
  for (const name of ['server', ...modules]) {
    await build({ entryPoints: [join(repo, S3_SOURCES[name])], bundle: true, platform: 'node', format: 'esm', outfile: join(bundled, `${name}.mjs`), external: name === 'server' ? ['s3rver'] : [], logLevel: 'error' });
  }
  return bundled;
}

/** rclone's remote `s:` on the test server at `endpoint` (its fixed keys), as environment variables. */
export function rcloneS3Env(endpoint) {
  return {
    RCLONE_CONFIG_S_TYPE: 's3', RCLONE_CONFIG_S_PROVIDER: 'Other', RCLONE_CONFIG_S_ENDPOINT: endpoint, RCLONE_CONFIG_S_ACCESS_KEY_ID: 'S3RVER',
    RCLONE_CONFIG_S_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_S_FORCE_PATH_STYLE: 'true', RCLONE_CONFIG_S_REGION: 'us-east-1',
  };
}
