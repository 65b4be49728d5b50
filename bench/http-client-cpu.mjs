// What one S3 request costs the client's CPU, by HTTP client: the number behind "on shared cores,
// a cold restore over the S3 API is slower than rclone's" (bench/RESULTS.md). On the strict
// loopback server (in a child process, on core 0 with --pin), 2,000 objects of 1-8 KiB are read
// back by signed GETs, 16 in flight, each client in a process of its own (on the other cores with
// --pin), its user and system CPU taken around the loop:
//  - node:http with a keep-alive Agent, what src/store/s3/client.ts used until it got a
//    transport of its own (src/store/s3/http1.ts);
//  - persist's S3 client itself (its transport, checks, retries and timeouts);
//  - a minimal HTTP/1.1 client over node:net written here, for comparison only: keep-alive
//    sockets, the request written as one string, answers with a Content-Length read straight from
//    the socket (no chunked bodies, no TLS, no retries: not a client persist could ship as it is).
// Every client sends the same signed requests (src/store/s3/sigv4.ts) and checks each answer's
// status and length. Interleaved rounds, medians. rclone, when installed, reads the same objects
// (`rclone copy --transfers 16`, files written to a temporary folder) as the baseline.
// Usage: node bench/http-client-cpu.mjs [rounds=5] [--pin]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { bundleS3, median, pinning, rcloneS3Env } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = dirname(here);
const args = process.argv.slice(2);
const rounds = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 5);
const { cores, pin, pinned } = pinning(args);
const OBJECTS = 2000;
const bundled = await bundleS3(['client', 'sigv4']);

const serverCode = `
const { startStrictS3Server } = await import(${JSON.stringify(join(bundled, 'server.mjs'))});
const server = await startStrictS3Server(['bench']);
console.log(server.endpoint);
(await import('node:readline')).createInterface({ input: process.stdin }).on('close', async () => { await server.stop(); process.exit(0); });`;
const serverChild = spawn(...pinned(pin?.server, process.execPath, ['--input-type=module', '-e', serverCode]), { cwd: repo, stdio: ['pipe', 'pipe', 'inherit'] });
const endpoint = (await createInterface({ input: serverChild.stdout })[Symbol.asyncIterator]().next()).value;

// One client's loop, in a child: `mode` picks the client; prints {user, system, ms} as JSON.
const clientCode = `
const { S3Client } = await import(${JSON.stringify(join(bundled, 'client.mjs'))});
const { signRequest, EMPTY_SHA256 } = await import(${JSON.stringify(join(bundled, 'sigv4.mjs'))});
const [mode, endpoint, sizesJson] = process.argv.slice(1);
const sizes = JSON.parse(sizesJson);
const url = new URL(endpoint);
const keys = sizes.map((_, i) => 'cpu/d' + (i % 20) + '/f' + i);
const sign = (path) => signRequest({ method: 'GET', path, query: [], headers: { host: url.host }, payloadHash: EMPTY_SHA256, region: 'us-east-1', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }).headers;
let get;
if (mode === 'persist') {
  const client = new S3Client({ endpoint, region: 'us-east-1', bucket: 'bench', pathStyle: true, provider: 'other', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
  get = (i) => client.get(keys[i]);
} else if (mode === 'node:http') {
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  get = (i) => new Promise((resolve, reject) => {
    const path = '/bench/' + keys[i];
    const request = http.request({ hostname: url.hostname, port: url.port, path, method: 'GET', headers: sign(path), agent });
    request.on('error', reject);
    request.on('response', (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error('HTTP ' + response.statusCode))));
    });
    request.end();
  });
} else {
  const net = await import('node:net');
  const idle = [];
  const connect = () => new Promise((resolve, reject) => { const socket = net.connect(Number(url.port), url.hostname, () => resolve(socket)); socket.setNoDelay(true); socket.once('error', reject); });
  get = async (i) => {
    const socket = idle.pop() ?? (await connect());
    const path = '/bench/' + keys[i];
    const headers = sign(path);
    let head = 'GET ' + path + ' HTTP/1.1\\r\\n';
    for (const name in headers) head += name + ': ' + headers[name] + '\\r\\n';
    return new Promise((resolve, reject) => {
      let received = null;
      let headEnd = -1;
      let total = -1;
      const onData = (chunk) => {
        received = received ? Buffer.concat([received, chunk]) : chunk;
        if (headEnd < 0) {
          headEnd = received.indexOf('\\r\\n\\r\\n');
          if (headEnd < 0) return;
          const text = received.toString('latin1', 0, headEnd);
          const length = /\\r\\ncontent-length: *(\\d+)/i.exec(text);
          if (!text.startsWith('HTTP/1.1 200') || !length) { socket.off('data', onData); return reject(new Error(text.split('\\r\\n')[0])); }
          total = headEnd + 4 + Number(length[1]);
        }
        if (received.length >= total) { socket.off('data', onData); idle.push(socket); resolve(received.subarray(headEnd + 4, total)); }
      };
      socket.on('data', onData);
      socket.write(head + '\\r\\n');
    });
  };
}
const before = process.cpuUsage();
const started = performance.now();
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => {
  while (next < keys.length) {
    const i = next++;
    const body = await get(i);
    if (body.length !== sizes[i]) throw new Error(keys[i] + ': ' + body.length + ' bytes, expected ' + sizes[i]);
  }
}));
const cpu = process.cpuUsage(before);
console.log(JSON.stringify({ user: cpu.user / 1000, system: cpu.system / 1000, ms: performance.now() - started }));
process.exit(0);`;

const root = mkdtempSync('/tmp/persist-bench-http-');
try {
  const sizes = Array.from({ length: OBJECTS }, (_, i) => 1024 + ((i * 7919) % 7168));
  const seed = `
const { S3Client } = await import(${JSON.stringify(join(bundled, 'client.mjs'))});
const { randomBytes } = await import('node:crypto');
const sizes = ${JSON.stringify(sizes)};
const client = new S3Client({ endpoint: ${JSON.stringify(endpoint)}, region: 'us-east-1', bucket: 'bench', pathStyle: true, provider: 'other', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
let next = 0;
await Promise.all(Array.from({ length: 16 }, async () => { while (next < sizes.length) { const i = next++; await client.put('cpu/d' + (i % 20) + '/f' + i, randomBytes(sizes[i])); } }));
client.close();`;
  const seeded = spawnSync(process.execPath, ['--input-type=module', '-e', seed], { encoding: 'utf8' });
  if (seeded.status !== 0) throw new Error(`seeding failed: ${seeded.stderr}`);

  const modes = ['node:http', 'persist', 'minimal'];
  const figures = Object.fromEntries(modes.map((mode) => [mode, []]));
  const haveRclone = spawnSync('rclone', ['version']).status === 0;
  const rclone = [];
  const rcloneEnv = { ...process.env, ...rcloneS3Env(endpoint) };
  delete rcloneEnv.AWS_CA_BUNDLE;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(i + r) % modes.length];
      const result = spawnSync(...pinned(pin?.clients, process.execPath, ['--input-type=module', '-e', clientCode, mode, endpoint, JSON.stringify(sizes)]), { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`${mode} failed: ${result.stderr.slice(-1500)}`);
      figures[mode].push(JSON.parse(result.stdout.trim().split('\n').at(-1)));
    }
    if (haveRclone) {
      const target = join(root, `rclone-${r}`);
      const timing = join(root, 'time.txt');
      const result = spawnSync(...pinned(pin?.clients, '/usr/bin/time', ['-f', '%U %S %e', '-o', timing, 'rclone', 'copy', '--transfers', '16', '--fast-list', 's:bench/cpu', target]), { env: rcloneEnv, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`rclone failed: ${result.stderr.slice(-1500)}`);
      const [user, system, seconds] = spawnSync('tail', ['-n', '1', timing], { encoding: 'utf8' }).stdout.trim().split(' ').map(Number);
      rclone.push({ user: user * 1000, system: system * 1000, ms: seconds * 1000 });
      rmSync(target, { recursive: true, force: true });
    }
  }
  const us = (ms) => `${Math.round((ms * 1000) / OBJECTS)} µs`;
  console.log(`${OBJECTS.toLocaleString('en')} signed GETs of 1-8 KiB, 16 in flight; median of ${rounds} interleaved rounds; ${pin ? `server on core ${pin.server}, clients on cores ${pin.clients}` : `server and clients share ${cores} cores`}`);
  console.log('| client | user CPU | system CPU | CPU a request | wall |');
  console.log('| --- | --- | --- | --- | --- |');
  const line = (name, list) => {
    const user = median(list.map((f) => f.user));
    const system = median(list.map((f) => f.system));
    console.log(`| ${name} | ${Math.round(user)} ms | ${Math.round(system)} ms | ${us(user + system)} | ${Math.round(median(list.map((f) => f.ms)))} ms |`);
  };
  for (const mode of modes) line(mode === 'minimal' ? 'minimal HTTP/1.1 over node:net (comparison only)' : mode, figures[mode]);
  if (haveRclone) line('rclone copy --transfers 16 (whole process, files written)', rclone);
  else console.log('rclone: not installed (no baseline row)');
} finally {
  serverChild.stdin.end();
  await new Promise((resolve) => serverChild.on('close', resolve));
  rmSync(root, { recursive: true, force: true });
}
