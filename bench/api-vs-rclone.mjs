// The S3 API store (a bucket without a mount) against `rclone copy --transfers 16` of the same tree,
// with the raw throughput of the server as the limit line, all on the strict loopback server in one
// run:
//  - a tree of 2,000 files of 1-8 KiB plus a 30 MiB file: persist's first save and cold restore
//    (new state folder, empty target), rclone's copy up and down (`--fast-list`), and the raw
//    limit: the same objects PUT (then GET) 16 at a time by a bare client with nothing else to do
//    (no stat, no hash, no manifest, no local file written on the way down). Interleaved rounds,
//    medians; every restore is compared byte for byte with the tree (`diff -r`). Each step starts
//    after a `sync`, so that none pays for writing back the pages the step before it left dirty
//    (rclone does not flush what it downloads; persist does, within its time). Right after rclone's
//    copy down, a `sync -f` of its target is timed too: rclone's restore made as durable as persist's.
//  - appending 1 KiB to a 100 MiB transcript in a synced folder: the bytes the server receives for
//    the push of the grown file (and the time), against the first save of it and against
//    `rclone copy` of the grown file (which sends it whole); then a restore, byte for byte.
// With `--pin` (2 cores or more), the server runs on core 0 and every client on the others
// (`taskset`): a remote store such as R2 spends none of the client machine's CPU, while a loopback
// server on shared cores is slowed by whichever client costs more CPU.
// `--files=N` makes the tree N small files (default 2,000) besides the 30 MiB one: what a command
// costs once (start, plan, lease, flush) weighs less in a larger tree.
// `--latency=MS` makes every request wait MS at the server before it is handled, as a round trip
// to a remote store such as R2 does (the loopback server answers in about a millisecond).
// Where the time goes: the server stamps every request (received, answered) on the monotonic clock
// that also times each command, which splits a command into its start (up to its first object of
// the tree), its transfers (first object to last) and its end (last object to exit).
// Round by round: persist's time over rclone's in the same round, the median ratio with its 95%
// interval, and how many rounds persist was faster (a machine's noise is larger than the gap).
// Usage: npm run build && node bench/api-vs-rclone.mjs [rounds=2] [--pin] [--files=N] [--latency=MS]
// (bundles the test server and the S3 client into bench/.tmp-s3store/ with esbuild first).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { bundleS3, median, pairedRatio, pinning, rcloneS3Env } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = dirname(here);
const args = process.argv.slice(2);
const rounds = Number(args.find((arg) => /^\d+$/.test(arg)) ?? 2);
const smallFiles = Number(args.find((arg) => arg.startsWith('--files='))?.slice(8) ?? 2000);
const latencyMs = Number(args.find((arg) => arg.startsWith('--latency='))?.slice(10) ?? 0);
const { cores, pin, pinned } = pinning(args);
const MiB = 1024 * 1024;
const bundled = await bundleS3(['client']);

// The server runs in a child of its own, so that nothing the bench does shares its event loop.
// It answers `stats` on stdin with its traffic since the last `stats` (JSON on one line), and the
// timed requests (method, url, received and answered in µs).
const serverCode = `
const { startStrictS3Server } = await import(${JSON.stringify(join(bundled, 'server.mjs'))});
const server = await startStrictS3Server(['bench'], { latencyMs: ${latencyMs} });
console.log(server.endpoint);
const lines = (await import('node:readline')).createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'stats') {
    const timed = server.requests().map((r) => [r.method, r.url, r.receivedUs, r.answeredUs]);
    console.log(JSON.stringify({ ...server.stats(), timed }));
    server.resetCounts();
  }
});
lines.on('close', async () => { await server.stop(); process.exit(0); });
`;
const serverChild = spawn(...pinned(pin?.server, process.execPath, ['--input-type=module', '-e', serverCode]), { cwd: repo, stdio: ['pipe', 'pipe', 'inherit'] });
const answers = createInterface({ input: serverChild.stdout })[Symbol.asyncIterator]();
const endpoint = (await answers.next()).value;
async function traffic() {
  serverChild.stdin.write('stats\n');
  return JSON.parse((await answers.next()).value);
}

// The raw limit: a bare client, 16 requests in flight, nothing else.
const rawCode = `
const { S3Client } = await import(${JSON.stringify(join(bundled, 'client.mjs'))});
const mapLimit = async (items, limit, fn) => {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => { while (next < items.length) await fn(items[next++]); }));
};
const { readFile, readdir, stat } = await import('node:fs/promises');
const [mode, endpoint, prefix, dir] = process.argv.slice(1);
const client = new S3Client({ endpoint, region: 'us-east-1', bucket: 'bench', pathStyle: true, provider: 'other', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
if (mode === 'put') {
  const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => (e.parentPath ?? e.path) + '/' + e.name);
  await mapLimit(files, 16, async (file) => {
    const key = prefix + file.slice(dir.length + 1);
    if ((await stat(file)).size > 8 * 1024 * 1024) await client.putLarge(key, file, { partSize: 8 * 1024 * 1024 });
    else await client.put(key, await readFile(file));
  });
} else {
  const objects = await client.listAll(prefix);
  await mapLimit(objects, 16, (object) => client.get(object.key));
}
client.close();
`;

const root = mkdtempSync('/tmp/persist-bench-api-');
const run = (command, args, env = {}) =>
  new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const startedUs = Number(started / 1000n);
    const child = spawn(...pinned(pin?.clients, command, args), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('close', (code) => {
      const ended = process.hrtime.bigint();
      resolve({ code, ms: Number(ended - started) / 1e6, startedUs, endedUs: Number(ended / 1000n), out });
    });
  });
const must = (name, result) => {
  if (result.code !== 0) throw new Error(`${name} exited ${result.code}:\n${result.out.slice(-1500)}`);
  return result.ms;
};
/** A command's start, transfers and end (ms), from the server's stamps of the objects of the tree (not the manifest, lease or listing). */
function phases(result, timed) {
  const isObject = (method, url) => {
    const [path, query] = url.split('?');
    return /\/tree\/(?!\.persist-)./.test(path) && (method === 'PUT' || method === 'POST' || (method === 'GET' && query === undefined));
  };
  const objects = timed.filter(([method, url, received, answered]) => isObject(method, url) && received >= result.startedUs && answered <= result.endedUs);
  const first = Math.min(...objects.map(([, , received]) => received));
  const last = Math.max(...objects.map(([, , , answered]) => answered));
  return { start: (first - result.startedUs) / 1000, transfers: (last - first) / 1000, end: (result.endedUs - last) / 1000 };
}
const bin = join(repo, 'bin/persist.js');
const persist = (spec, state) => run(process.execPath, [bin, 'apply', '--auto-approve', '-f', spec], { PERSIST_STATE_DIR: state });
const rcloneEnv = rcloneS3Env(endpoint);
delete process.env.AWS_CA_BUNDLE;
const rclone = (args) => run('rclone', ['copy', '--transfers', '16', ...args], rcloneEnv);
const raw = (mode, prefix, dir = '') => run(process.execPath, ['--input-type=module', '-e', rawCode, mode, endpoint, prefix, dir]);
const specFor = (from, prefix) =>
  `version: 1\nbuckets:\n  data:\n    name: bench\n    endpoint: ${endpoint}\n    region: us-east-1\n    provider: other\n    prefix: ${prefix}\n    credentials: { accessKeyId: S3RVER, secretAccessKey: S3RVER }\nsyncs:\n  tree: { from: ${from}, to: tree }\n`;
const same = (a, b) => spawnSync('diff', ['-r', a, b]).status === 0;
const duSize = (dir) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
const fmt = (ms) => `${(ms / 1000).toFixed(1)} s`;
const loads = [loadavg()[0]];

try {
  const tree = join(root, 'tree');
  for (let i = 0; i < smallFiles; i++) {
    mkdirSync(join(tree, `d${i % 20}`), { recursive: true });
    writeFileSync(join(tree, `d${i % 20}`, `f${i}.txt`), randomBytes(1024 + ((i * 7919) % 7168)));
  }
  writeFileSync(join(tree, 'big.bin'), randomBytes(30 * MiB));

  const times = { save: [], rcloneUp: [], rawPut: [], restore: [], rcloneDown: [], rawGet: [] };
  const requests = {};
  const split = Object.fromEntries(Object.keys(times).map((name) => [name, []]));
  /** `sync -f` of rclone's restored folder, right after the copy. */
  const rcloneFlush = [];
  /** One step, after a `sync`: its time, its requests and where its time went. */
  const timeStep = async (name, step) => {
    spawnSync('sync');
    await traffic();
    const result = await step();
    times[name].push(must(name, result));
    const seen = await traffic();
    requests[name] = seen.requests;
    split[name].push(phases(result, seen.timed));
  };
  for (let r = 1; r <= rounds; r++) {
    const dir = join(root, `r${r}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'save.yaml'), specFor(tree, `r${r}/persist`));
    writeFileSync(join(dir, 'restore.yaml'), specFor(join(dir, 'restored'), `r${r}/persist`));
    // Up: the three one after another, the order turned each round.
    const up = [
      ['save', () => persist(join(dir, 'save.yaml'), join(dir, 'state-a'))],
      ['rcloneUp', () => rclone([tree, `s:bench/r${r}/rclone/tree`])],
      ['rawPut', () => raw('put', `r${r}/raw/tree/`, tree)],
    ];
    for (let i = 0; i < up.length; i++) {
      const [name, step] = up[(i + r) % up.length];
      await timeStep(name, step);
    }
    // A new container restores: a new state folder (same machine id: the same machine, no lineage question).
    mkdirSync(join(dir, 'state-b'));
    execFileSync('cp', [join(dir, 'state-a', 'machine-id'), join(dir, 'state-b', 'machine-id')]);
    const down = [
      ['restore', () => persist(join(dir, 'restore.yaml'), join(dir, 'state-b'))],
      [
        'rcloneDown',
        async () => {
          const copied = await rclone(['--fast-list', `s:bench/r${r}/rclone/tree`, join(dir, 'rclone-restored')]);
          if (copied.code === 0) rcloneFlush.push(must('sync -f after rclone', await run('sync', ['-f', join(dir, 'rclone-restored')])));
          return copied;
        },
      ],
      ['rawGet', () => raw('get', `r${r}/raw/tree/`)],
    ];
    for (let i = 0; i < down.length; i++) {
      const [name, step] = down[(i + r) % down.length];
      await timeStep(name, step);
    }
    if (!same(tree, join(dir, 'restored'))) throw new Error(`round ${r}: persist's restore differs from the tree`);
    if (!same(tree, join(dir, 'rclone-restored'))) throw new Error(`round ${r}: rclone's restore differs from the tree`);
    loads.push(loadavg()[0]);
  }
  const m = Object.fromEntries(Object.entries(times).map(([name, list]) => [name, median(list)]));
  const requestLine = (name) => Object.entries(requests[name]).map(([method, count]) => `${method} ${count}`).join(', ');
  console.log(`tree: ${smallFiles.toLocaleString('en')} files of 1-8 KiB + 30 MiB (${(duSize(tree) / MiB).toFixed(1)} MiB); median of ${rounds} interleaved rounds; requests of the last round`);
  console.log(pin ? `pinned: the server on core ${pin.server}, every client on cores ${pin.clients}` : `not pinned: the server and the clients share ${cores} cores`);
  if (latencyMs > 0) console.log(`every request waited ${latencyMs} ms at the server before it was handled (a round trip to a remote store)`);
  console.log('| | persist (API store) | rclone copy --transfers 16 | persist / rclone | raw: bare client, 16 in flight | persist / raw |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  console.log(`| first save | ${fmt(m.save)} | ${fmt(m.rcloneUp)} | ${(m.save / m.rcloneUp).toFixed(2)}x | ${fmt(m.rawPut)} | ${(m.save / m.rawPut).toFixed(2)}x |`);
  console.log(`| cold restore | ${fmt(m.restore)} | ${fmt(m.rcloneDown)} | ${(m.restore / m.rcloneDown).toFixed(2)}x | ${fmt(m.rawGet)} | ${(m.restore / m.rawGet).toFixed(2)}x |`);
  const durable = median(times.rcloneDown.map((ms, i) => ms + rcloneFlush[i]));
  console.log(`rclone's copy down and then \`sync -f\` of what it wrote (durable, as persist's restore is): ${fmt(durable)}; persist / that: ${(m.restore / durable).toFixed(2)}x (the flush alone: ${Math.round(median(rcloneFlush))} ms)`);
  const paired = (label, a, b) => {
    const p = pairedRatio(a, b);
    console.log(`| ${label} | ${p.median.toFixed(2)}x | ${p.low.toFixed(2)}x to ${p.high.toFixed(2)}x | ${p.faster} of ${p.rounds} |`);
  };
  console.log('round by round (each ratio of two runs of the same round; 95% interval of the median ratio, bootstrap over the rounds):');
  console.log('| | median ratio | 95% interval | rounds persist was faster |');
  console.log('| --- | --- | --- | --- |');
  paired('first save / rclone up', times.save, times.rcloneUp);
  paired('cold restore / rclone down', times.restore, times.rcloneDown);
  paired('cold restore / rclone down, then sync -f', times.restore, times.rcloneDown.map((ms, i) => ms + rcloneFlush[i]));
  console.log(`all rounds (s): ${Object.entries(times).map(([name, list]) => `${name} ${list.map((ms) => (ms / 1000).toFixed(1)).join('/')}`).join('; ')}`);
  for (const name of Object.keys(times)) console.log(`requests, ${name}: ${requestLine(name)}`);
  const part = (name, key) => `${Math.round(median(split[name].map((p) => p[key])))} ms`;
  console.log('where the time goes (medians; objects of the tree as the server stamped them):');
  console.log('| | persist save | rclone up | raw put | persist restore | rclone down | raw get |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [key, label] of [['start', 'start to first object'], ['transfers', 'first object to last'], ['end', 'last object to exit']]) {
    console.log(`| ${label} | ${['save', 'rcloneUp', 'rawPut', 'restore', 'rcloneDown', 'rawGet'].map((name) => part(name, key)).join(' | ')} |`);
  }
  console.log('every restore equal to the tree (diff -r)');

  // --- appending 1 KiB to a 100 MiB transcript ---
  const transcripts = join(root, 'transcripts');
  mkdirSync(transcripts);
  const transcript = join(transcripts, 'session.jsonl');
  const lines = [];
  for (let size = 0; size < 100 * MiB; ) {
    const line = `${JSON.stringify({ role: 'assistant', text: randomBytes(750).toString('base64') })}\n`;
    lines.push(line);
    size += line.length;
  }
  writeFileSync(transcript, lines.join('').slice(0, 100 * MiB));
  const appendSpec = (from) => specFor(from, 'append').replace('to: tree', 'to: transcripts');
  writeFileSync(join(root, 'append.yaml'), appendSpec(transcripts));
  await traffic();
  const firstMs = must('first save of the transcript', await persist(join(root, 'append.yaml'), join(root, 'state-append')));
  const first = await traffic();
  const tail = `${JSON.stringify({ role: 'user', text: 'x'.repeat(1000) })}\n`.slice(0, 1024);
  appendFileSync(transcript, tail.padEnd(1024, ' '));
  const pushed = await persist(join(root, 'append.yaml'), join(root, 'state-append'));
  const appendMs = must('push of the grown transcript', pushed);
  const appended = await traffic();
  must('rclone copy of the transcript', await rclone([transcripts, 's:bench/append-rclone/transcripts']));
  appendFileSync(transcript, tail.padEnd(1024, ' '));
  await traffic();
  const rcloneMs = must('rclone copy of the grown transcript', await rclone([transcripts, 's:bench/append-rclone/transcripts']));
  const rcloneTraffic = await traffic();
  // The last append is pushed too, then restored into a new folder by a new container.
  must('push of the second append', await persist(join(root, 'append.yaml'), join(root, 'state-append')));
  writeFileSync(join(root, 'append-restore.yaml'), appendSpec(join(root, 'transcripts-restored')));
  mkdirSync(join(root, 'state-append-b'));
  execFileSync('cp', [join(root, 'state-append', 'machine-id'), join(root, 'state-append-b', 'machine-id')]);
  must('restore of the transcript', await persist(join(root, 'append-restore.yaml'), join(root, 'state-append-b')));
  const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
  const restoredEqual = sha(transcript) === sha(join(root, 'transcripts-restored', 'session.jsonl'));
  const mib = (bytes) => `${(bytes / MiB).toFixed(2)} MiB`;
  console.log('');
  console.log('appending 1 KiB to a 100 MiB transcript (bytes the server received in request bodies):');
  console.log('| | time | bytes received | requests |');
  console.log('| --- | --- | --- | --- |');
  const reqs = (t) => Object.entries(t.requests).map(([method, count]) => `${method} ${count}`).join(', ');
  console.log(`| persist: first save of the 100 MiB transcript | ${fmt(firstMs)} | ${mib(first.totalBytesIn)} | ${reqs(first)} |`);
  console.log(`| persist: push after appending 1 KiB | ${fmt(appendMs)} | ${mib(appended.totalBytesIn)} | ${reqs(appended)} |`);
  console.log(`| rclone copy after appending 1 KiB | ${fmt(rcloneMs)} | ${mib(rcloneTraffic.totalBytesIn)} | ${reqs(rcloneTraffic)} |`);
  console.log(`persist's summary: ${/copied [^\n]*/.exec(pushed.out)?.[0] ?? '(none)'}`);
  console.log(`restored byte for byte in a new container: ${restoredEqual ? 'yes' : 'NO'}`);
  console.log(`load average (1 min) at the start and after each round: ${loads.map((l) => l.toFixed(1)).join(', ')}; at the end ${loadavg()[0].toFixed(1)}`);
  if (!restoredEqual) process.exitCode = 1;
} finally {
  serverChild.stdin.end();
  await new Promise((resolve) => serverChild.on('close', resolve));
  rmSync(root, { recursive: true, force: true });
}
