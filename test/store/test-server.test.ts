// The loopback S3 servers the tests run against (test/helpers/s3server.ts) must not fail where S3
// does not: a listing while keys are written or deleted, deletes in one folder, and (the strict
// server, which the API store and the lease are tested on) a read while its key is rewritten.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3Client } from '../../src/store/s3/client.js';
import { mapLimit } from '../../src/store/limit.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startS3Server, startStrictS3Server, type S3TestServer } from '../helpers/s3server.js';

const BUCKET = 'server-test';
let server: S3TestServer;
let client: S3Client;

beforeAll(async () => {
  server = await startS3Server([BUCKET]);
  client = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other',
    accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY, maxAttempts: 1,
  });
});

afterAll(async () => {
  client?.close();
  await server?.stop();
});

/** Lists the bucket over HTTP until `changes` settles; every listing must succeed. */
async function listWhile(changes: Promise<void>): Promise<string[][]> {
  let changing = true;
  const settled = changes.finally(() => (changing = false));
  const listings: string[][] = [];
  try {
    while (changing) listings.push((await client.listAll()).map((object) => object.key));
  } finally {
    await settled;
  }
  return listings;
}

it('lists keys while they are being overwritten, never reading half-written metadata', async () => {
  const keys = Array.from({ length: 20 }, (_, i) => `folder/${i}.md`);
  await Promise.all(keys.map((key) => client.put(key, Buffer.from('first'))));
  const listings = await listWhile((async () => {
    for (let round = 0; round < 40; round++) await Promise.all(keys.map((key) => client.put(key, Buffer.from(`round ${round}`))));
  })());
  expect(listings.length).toBeGreaterThan(0);
  for (const listed of listings) expect(listed).toEqual([...keys].sort());
});

it('lists keys while others in a folder are deleted, eight at a time', async () => {
  await client.put('kept.md', Buffer.from('kept'));
  const keys = Array.from({ length: 300 }, (_, i) => `gone/${i}.md`);
  for (let round = 0; round < 2; round++) {
    await mapLimit(keys, 16, (key) => client.put(key, Buffer.from('x')));
    const listings = await listWhile(mapLimit(keys, 8, (key) => client.delete(key)).then(() => undefined));
    expect(listings.length).toBeGreaterThan(0);
    for (const listed of listings) expect(listed).toContain('kept.md');
  }
  expect(await client.listAll('gone/')).toEqual([]);
});

it('(strict) reads a key while it is rewritten: each read is one whole version, with its own ETag', async () => {
  const strict = await startStrictS3Server([BUCKET]);
  // A read that got fewer bytes than announced would wait for the rest: 5 s, then fail.
  const reader = new S3Client({
    endpoint: strict.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other',
    accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY, maxAttempts: 1, timeoutMs: 5_000,
  });
  try {
    const version = (i: number) => Buffer.from(`version ${i} ${'x'.repeat((i * 7919) % 3000)}\n`);
    await reader.put('lease.json', version(0));
    let writing = true;
    const writes = (async () => {
      for (let i = 1; i <= 150; i++) await reader.put('lease.json', version(i));
    })().finally(() => (writing = false));
    let reads = 0;
    try {
      while (writing) {
        const { data, etag } = await reader.getTagged('lease.json');
        expect(data.toString().startsWith('version ')).toBe(true);
        expect(etag.replace(/"/g, '')).toBe(createHash('md5').update(data).digest('hex'));
        reads++;
      }
    } finally {
      await writes;
    }
    expect(reads).toBeGreaterThan(0);
  } finally {
    reader.close();
    await strict.stop();
  }
});

it('(strict) with latencyMs, every request waits that long, and requests in flight wait at once (a timer, not a queue)', async () => {
  const strict = await startStrictS3Server([BUCKET], { latencyMs: 200 });
  const remote = new S3Client({
    endpoint: strict.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other',
    accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY, maxAttempts: 1,
  });
  try {
    let started = performance.now();
    await remote.put('far.txt', Buffer.from('far'));
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    started = performance.now();
    const read = await Promise.all(Array.from({ length: 16 }, () => remote.get('far.txt')));
    const elapsed = performance.now() - started;
    expect(read.map(String)).toEqual(Array(16).fill('far'));
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(16 * 200); // one after another would take 3.2 s at least
  } finally {
    remote.close();
    await strict.stop();
  }
});
