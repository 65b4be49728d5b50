// Shared helpers for the benchmarks that need a real bucket: s3rver on loopback with a traffic
// counter, specs whose s3fs mounts persist makes, the checks that decide whether FUSE benches can
// run, test trees and repos. Run a bench in inSandbox() and register every mount point with track()
// before persist mounts it: the sandbox unmounts it, stops the servers and removes the folder.
import { execFileSync, fork, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export const S3RVER_KEY = 'S3RVER';

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why real s3fs mounts cannot run here (empty when they can). */
export function fuseMissing(binaries = ['s3fs']) {
  const missing = [];
  if (process.platform !== 'linux') missing.push(`FUSE needs Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) missing.push('not running as root');
  try {
    closeSync(openSync('/dev/fuse', 'r+'));
  } catch (error) {
    missing.push(`/dev/fuse cannot be opened (${error.code ?? error})`);
  }
  for (const binary of ['fusermount', ...binaries]) if (!onPath(binary)) missing.push(`${binary} is not installed`);
  return missing;
}

/** Print the skip line and exit 0 when FUSE benches cannot run. */
export function skipUnlessFuse(benchName) {
  const missing = fuseMissing();
  if (missing.length === 0) return;
  console.log(`SKIP ${benchName}: ${missing.join('; ')}`);
  process.exit(0);
}

/**
 * Traffic as the S3 server sees it: requests per method; upload bytes are the request bodies of
 * PUT/POST (their Content-Length; s3fs always sends one); download bytes are what the server wrote
 * back for GETs (headers included), measured on the socket.
 */
function newTraffic() {
  // `history`: the part of it that keeps a sync's earlier generations (keys under `.persist-sync/generations/`);
  // `classes`: the parts named by startS3rver's classes.
  return { requests: {}, putBodyBytes: 0, putObjects: 0, serverCopies: 0, getResponseBytes: 0, unknownLength: 0, history: { requests: 0, putBodyBytes: 0 }, classes: {} };
}

/**
 * s3rver runs in a child process: the benchmarks time commands with spawnSync, which would
 * block a server living in the same event loop (s3fs would then hang on every request).
 * Returns {port, endpoint, resetTraffic(), traffic(), stop()}; the traffic calls are async.
 */
export async function startS3rver(buckets, classes = {}) {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, PERSIST_BENCH_S3RVER_CHILD: JSON.stringify(buckets), PERSIST_BENCH_S3RVER_CLASSES: JSON.stringify(classes) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const replies = [];
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.on('message', (message) => replies.shift()?.(message));
  const ask = (message) =>
    new Promise((resolve, reject) => {
      replies.push(resolve);
      if (message) child.send(message);
      exited.then(() => reject(new Error('the s3rver child process exited')));
    });
  const { port, directory } = await ask(null);
  const server = {
    port,
    /** Where s3rver keeps objects: `<directory>/<bucket>/<key>._S3rver_object`. */
    directory,
    endpoint: `http://127.0.0.1:${port}`,
    /** Start counting afresh. */
    resetTraffic: () => ask({ type: 'reset' }),
    /** Traffic since the last reset: {requests: {METHOD: n}, putBodyBytes, putObjects, serverCopies, getResponseBytes}. */
    traffic: () => ask({ type: 'traffic' }),
    /** Store every file under `dir` as an object `<prefix><relative path>` of `bucket`, without requests; resolves to {count}. */
    seed: (bucket, prefix, dir) => ask({ type: 'seed', bucket, prefix, dir }),
    async stop() {
      if (child.exitCode === null) {
        child.send({ type: 'stop' });
        let timer;
        await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      rmSync(directory, { recursive: true, force: true }); // also when the child had to be killed
      servers.delete(server);
    },
  };
  servers.add(server);
  return server;
}

/** Servers started and not yet stopped, for inSandbox's cleanup. */
const servers = new Set();

/**
 * The child side: s3rver on a free loopback port, counting traffic, answering over IPC.
 * `classes`: name -> regular expression (source) on the decoded request path (`/bucket/key`);
 * the traffic then also counts requests and bytes per class (the first class that matches).
 */
async function serveS3rver(buckets, classes) {
  const classifiers = Object.entries(classes).map(([name, source]) => [name, new RegExp(source)]);
  // s3rver makes its ListObjectsV2 continuation tokens with DES, which Node 20's OpenSSL 3 lacks:
  // every truncated listing (more than 1,000 keys) answered 500. Its tokens are opaque to the
  // client, so here they are its plain text (this process runs nothing but the server).
  const crypto = require('node:crypto');
  for (const name of ['createCipheriv', 'createDecipheriv']) {
    const original = crypto[name];
    crypto[name] = (algorithm, ...rest) =>
      algorithm === 'des' ? { update: (data, encoding) => Buffer.from(data, encoding), final: () => Buffer.alloc(0) } : original(algorithm, ...rest);
  }
  const S3rver = require('s3rver');
  const directory = mkdtempSync(join(tmpdir(), 'persist-bench-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, vhostBuckets: false });
  const { port } = await server.run();
  for (const name of buckets) await server.store.putBucket(name);
  let traffic = newTraffic();
  server.httpServer.prependListener('request', (req, res) => {
    const counted = traffic;
    counted.requests[req.method] = (counted.requests[req.method] ?? 0) + 1;
    const path = decodeURIComponent(req.url.split('?')[0]);
    if (path.includes('/.persist-sync/generations/')) {
      counted.history.requests++;
      if ((req.method === 'PUT' || req.method === 'POST') && req.headers['content-length'] !== undefined) counted.history.putBodyBytes += Number(req.headers['content-length']);
    }
    const name = classifiers.find(([, pattern]) => pattern.test(path))?.[0];
    const klass = name === undefined ? null : (counted.classes[name] ??= { requests: {}, putBodyBytes: 0, getResponseBytes: 0 });
    if (klass) klass.requests[req.method] = (klass.requests[req.method] ?? 0) + 1;
    if (req.method === 'PUT' || req.method === 'POST') {
      if (req.headers['x-amz-copy-source']) counted.serverCopies++;
      else if (req.method === 'PUT' && !req.url.includes('uploadId=')) counted.putObjects++;
      const length = req.headers['content-length'];
      if (length === undefined) counted.unknownLength++;
      else {
        counted.putBodyBytes += Number(length);
        if (klass) klass.putBodyBytes += Number(length);
      }
    } else if (req.method === 'GET') {
      const socket = req.socket;
      const before = socket.bytesWritten;
      res.on('finish', () => {
        counted.getResponseBytes += socket.bytesWritten - before;
        if (klass) klass.getResponseBytes += socket.bytesWritten - before;
      });
    }
  });
  process.on('message', async (message) => {
    if (message.type === 'reset') {
      traffic = newTraffic();
      process.send(traffic);
    } else if (message.type === 'traffic') {
      process.send(traffic);
    } else if (message.type === 'seed') {
      // Objects straight into the store (no request, not counted): every file under `dir` as `<prefix><relative path>`.
      const S3Object = require('s3rver/lib/models/object');
      const { readdirSync, readFileSync: read } = await import('node:fs');
      let count = 0;
      for (const entry of readdirSync(message.dir, { withFileTypes: true, recursive: true })) {
        if (!entry.isFile()) continue;
        const path = join(entry.parentPath ?? entry.path, entry.name);
        const content = read(path);
        await server.store.putObject(new S3Object(message.bucket, `${message.prefix}${path.slice(message.dir.length + 1)}`, content, { 'content-length': String(content.length) }));
        count++;
      }
      process.send({ count });
    } else if (message.type === 'stop') {
      server.httpServer.closeAllConnections?.();
      await server.close();
      rmSync(directory, { recursive: true, force: true });
      process.exit(0);
    }
  });
  process.on('disconnect', () => {
    rmSync(directory, { recursive: true, force: true });
    process.exit(0);
  });
  process.send({ port, directory });
}

if (process.env.PERSIST_BENCH_S3RVER_CHILD && process.send) {
  await serveS3rver(JSON.parse(process.env.PERSIST_BENCH_S3RVER_CHILD), JSON.parse(process.env.PERSIST_BENCH_S3RVER_CLASSES ?? '{}'));
}

function mountedPoints() {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8))));
}

export function isMounted(path) {
  return mountedPoints().includes(path);
}

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const tracked = new Set();

/** Remember a mount point (also one made by persist) so that unmountAll() takes it down. */
export function track(mountPoint) {
  tracked.add(mountPoint);
}

/** Unmount one mount point: fusermount -u, then lazily; waits until it has left the mount table. */
export async function unmount(mountPoint) {
  if (!isMounted(mountPoint)) return;
  for (const args of [['-u', mountPoint], ['-u', '-z', mountPoint]]) {
    if (spawnSync('fusermount', args, { stdio: 'ignore', timeout: 30_000 }).status === 0) break;
  }
  await waitFor(() => !isMounted(mountPoint), 15_000, `${mountPoint} to be unmounted`);
}

/** Unmount every tracked mount; throws (after trying all) if one stays mounted. */
export async function unmountAll() {
  const failures = [];
  for (const mountPoint of [...tracked].sort((a, b) => b.length - a.length)) {
    try {
      await unmount(mountPoint);
      tracked.delete(mountPoint);
    } catch (error) {
      failures.push(`${mountPoint}: ${error.message}`);
    }
  }
  if (failures.length) throw new Error(`could not unmount: ${failures.join('; ')}`);
}

/** Remove a temp folder only when nothing is mounted beneath it (never delete through a mount). */
export function removeDir(dir) {
  const inside = mountedPoints().filter((p) => p === dir || p.startsWith(`${dir}/`));
  if (inside.length) {
    console.error(`kept ${dir}: still mounted at ${inside.join(', ')}`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Run `body(dir)` in a fresh temp folder, then clean up in the only safe order, also on failure:
 * unmount everything tracked, stop the s3rver servers started meanwhile, and remove the folder
 * (never through a mount).
 */
export async function inSandbox(prefix, body) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await body(dir);
  } finally {
    try {
      await unmountAll();
    } finally {
      for (const server of [...servers]) await server.stop();
      removeDir(dir);
    }
  }
}

/**
 * A spec bucket block for an s3fs mount of an s3rver bucket (credentials through the environment).
 * `transfers`: the s3fs option (default `api`: syncs, bundles and files then go through the S3
 * API; `mount` measures them through s3fs).
 */
export function s3fsBucketYaml(server, bucket, mountPath, { transfers } = {}) {
  return `buckets:
  data:
    name: ${bucket}
    endpoint: ${server.endpoint}
    region: us-east-1
    pathStyle: true
    provider: other
    credentials:
      accessKeyId: \${env:BENCH_S3_KEY}
      secretAccessKey: \${env:BENCH_S3_SECRET}
    mount:
      backend: s3fs
      path: ${mountPath}
${transfers ? `      options: { transfers: ${transfers} }\n` : ''}`;
}

/** Environment for persist runs: its own state folder and the s3rver keys. */
export function persistEnv(stateDir) {
  return { ...process.env, PERSIST_STATE_DIR: stateDir, BENCH_S3_KEY: S3RVER_KEY, BENCH_S3_SECRET: S3RVER_KEY, NO_COLOR: '1' };
}

export function formatBytes(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function describeTraffic(t) {
  const methods = Object.entries(t.requests)
    .sort()
    .map(([method, count]) => `${method} ${count}`)
    .join(', ');
  const uncounted = t.unknownLength ? ` (${t.unknownLength} uploads without Content-Length not counted)` : '';
  return `${methods || 'no requests'}; uploaded ${formatBytes(t.putBodyBytes)}${uncounted} in ${t.putObjects} object PUTs (+${t.serverCopies} server-side copies)`;
}

/** Deterministic filler text of `size` bytes (compressible like source code, not all one byte). */
export function fillerText(seed, size) {
  const words = ['const', 'value', 'return', 'import', 'function', 'memory', 'agent', 'config', '=>', '{', '}', ';', '\n'];
  let state = seed * 2654435761 + 1;
  let text = '';
  while (text.length < size) {
    state = (state * 1103515245 + 12345) % 2147483648;
    text += `${words[state % words.length]} `;
  }
  return text.slice(0, size);
}

/** Write `count` files of 1–4 KiB under `dir` in nested folders (dNN/sNN/fNNNN.txt); returns their paths. */
export function writeTree(dir, count, { prefix = 'f', perFolder = 50 } = {}) {
  const paths = [];
  for (let i = 0; i < count; i++) {
    const folder = join(dir, `d${String(Math.floor(i / (perFolder * 10))).padStart(2, '0')}`, `s${String(Math.floor(i / perFolder) % 10)}`);
    if (i % perFolder === 0) mkdirSync(folder, { recursive: true });
    const path = join(folder, `${prefix}${String(i).padStart(5, '0')}.txt`);
    writeFileSync(path, fillerText(i, 1024 + ((i * 7919) % 3072)));
    paths.push(path);
  }
  return paths;
}

const GIT_IDENTITY = ['-c', 'user.name=bench', '-c', 'user.email=bench@example.com'];

/** A git repo of `files` files in nested folders with `commits` commits (the later ones edit a few files), packed by gc. */
export function makeRepo(dir, files, commits = 5) {
  mkdirSync(dir, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', dir]);
  const paths = writeTree(join(dir, 'src'), files);
  const git = (...args) => execFileSync('git', ['-C', dir, ...GIT_IDENTITY, ...args], { stdio: 'pipe' });
  git('add', '-A');
  git('commit', '-qm', 'initial import');
  for (let c = 1; c < commits; c++) {
    for (let k = 0; k < 20; k++) writeFileSync(paths[(c * 97 + k * 31) % paths.length], fillerText(c * 1000 + k, 2048));
    git('commit', '-qam', `change ${c}`);
  }
  git('gc', '-q');
  return paths;
}

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'persist.js');

/** Run the persist CLI; returns {ms, stdout}; throws with its output when it exits non-zero. */
export function runPersist(args, env) {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [cli, ...args], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) {
    throw new Error(`persist ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  }
  return { ms, stdout: result.stdout };
}
