#!/usr/bin/env node
// A local S3 server to try persist's real backends (s3fs, rclone, the S3 API) without a cloud
// account: s3rver (a dev dependency of this repository) on 127.0.0.1, a free port, one bucket,
// keys S3RVER / S3RVER. It prints the endpoint and the variables to export (and writes them to
// an env file you can source), and on Ctrl-C (SIGINT or SIGTERM) stops the server and removes
// the env file (and the data folder when it made a temporary one). Mounts that persist made of
// the bucket are named on exit (unmount them first: they go dead once the server stops).
//
//   npm run local-s3 [-- --port N] [--bucket NAME] [--dir FOLDER | --temp] [--vars-file FILE]
//
// Defaults: a free port, bucket `persist-local`, data in examples/local-s3/data/ (kept between
// runs, like a real bucket), variables file examples/local-s3/local-s3.env. (Not --env-file:
// Node 20 reads that flag as its own wherever it stands.)
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function usage(message) {
  process.stderr.write(`local-s3: ${message}\nusage: npm run local-s3 -- [--port N] [--bucket NAME] [--dir FOLDER | --temp] [--vars-file FILE]\n`);
  process.exit(64);
}

const args = process.argv.slice(2);
const options = { port: 0, bucket: 'persist-local', dir: join(here, 'data'), temp: false, envFile: join(here, 'local-s3.env') };
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const value = () => args[++i] ?? usage(`${arg} needs a value`);
  if (arg === '--port') {
    options.port = Number(value());
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) usage(`--port must be a port number (0 for a free one), not ${args[i]}`);
  } else if (arg === '--bucket') {
    options.bucket = value();
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) usage(`--bucket must be a bucket name (3-63 characters: a-z 0-9 . -), not ${options.bucket}`);
  } else if (arg === '--dir') options.dir = resolve(value());
  else if (arg === '--temp') options.temp = true;
  else if (arg === '--vars-file') options.envFile = resolve(value());
  else if (arg === '--help' || arg === '-h') usage('starts a local S3 server');
  else usage(`unknown argument ${arg}`);
}

let S3rver;
try {
  S3rver = require('s3rver');
} catch {
  process.stderr.write('local-s3: s3rver is not installed; run `npm ci` in the clone first (it is a dev dependency)\n');
  process.exit(1);
}

const directory = options.temp ? mkdtempSync(join(tmpdir(), 'persist-local-s3-')) : options.dir;
mkdirSync(directory, { recursive: true });
const server = new S3rver({ address: '127.0.0.1', port: options.port, silent: true, directory, vhostBuckets: false, configureBuckets: [{ name: options.bucket }] });
let address;
try {
  address = await server.run();
} catch (error) {
  process.stderr.write(`local-s3: cannot start s3rver on 127.0.0.1:${options.port}: ${error.message}\n`);
  if (options.temp) rmSync(directory, { recursive: true, force: true });
  process.exit(1);
}
const endpoint = `http://127.0.0.1:${address.port}`;
const vars = {
  LOCAL_S3_ENDPOINT: endpoint,
  LOCAL_S3_BUCKET: options.bucket,
  LOCAL_S3_ACCESS_KEY_ID: 'S3RVER',
  LOCAL_S3_SECRET_ACCESS_KEY: 'S3RVER',
};
const exportLine = `export ${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join(' ')}`;
writeFileSync(options.envFile, `# written by examples/local-s3/start.mjs (pid ${process.pid}); removed when it stops\n${exportLine}\n`);
process.stdout.write(
  [
    `local-s3: s3rver at ${endpoint}, bucket ${options.bucket}, keys S3RVER / S3RVER, data in ${directory}${options.temp ? ' (temporary)' : ''}`,
    `local-s3: in another shell, export these (or: . ${options.envFile}):`,
    exportLine,
    'local-s3: Ctrl-C stops the server.',
    '',
  ].join('\n'),
);

/** FUSE mounts of this bucket (s3fs and rclone name the bucket as the mount source). */
function mountsOfBucket() {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' - '))
      .filter(([, tail]) => tail && /^fuse\.(s3fs|rclone|goofys) /.test(tail) && tail.split(' ')[1] === options.bucket)
      .map(([head]) => head.split(' ')[4]);
  } catch {
    return [];
  }
}

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  const mounts = mountsOfBucket();
  if (mounts.length) process.stderr.write(`local-s3: still mounted (dead once the server stops; unmount with fusermount3 -u): ${mounts.join(', ')}\n`);
  await server.close();
  rmSync(options.envFile, { force: true });
  if (options.temp) rmSync(directory, { recursive: true, force: true });
  process.stdout.write(`local-s3: stopped (${signal})\n`);
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
