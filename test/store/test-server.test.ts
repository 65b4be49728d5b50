// The loopback S3 servers the tests run against (test/helpers/s3server.ts) must not fail where S3
// does not: a listing while keys are written or deleted, deletes in one folder, and (the strict
// server, which the API store and the lease are tested on) a read while its key is rewritten.
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3Client } from '../../src/store/s3/client.js';
import { mapLimit } from '../../src/store/limit.js';
import { EMPTY_SHA256, sha256Hex, signRequest, uriEncode } from '../../src/store/s3/sigv4.js';
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

/** One signed request to a test server (path-style: `key` '' addresses the bucket). */
function signed(endpoint: string, method: string, key: string, query: [string, string][], body?: Buffer): Promise<{ status: number; body: string }> {
  const url = new URL(endpoint);
  const path = `/${BUCKET}${key ? `/${uriEncode(key, true)}` : ''}`;
  const { headers, queryString } = signRequest({
    method, path, query, headers: { host: url.host, 'content-length': String(body?.length ?? 0) },
    payloadHash: body ? sha256Hex(body) : EMPTY_SHA256, region: 'us-east-1', accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY,
  });
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: queryString ? `${path}?${queryString}` : path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const all = (xml: string, name: string): string[] => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1] as string);

it('(strict) ListMultipartUploads, ListParts and AbortMultipartUpload answer as S3 documents them', async () => {
  const strict = await startStrictS3Server([BUCKET]);
  try {
    const initiate = async (key: string): Promise<string> => all((await signed(strict.endpoint, 'POST', key, [['uploads', '']])).body, 'UploadId')[0] as string;
    const keys = ['a/1.bin', 'a/2.bin', 'b/x/3.bin', 'b/x/3.bin', 'c.bin', 'd/4.bin'];
    const ids: string[] = [];
    for (const key of keys) ids.push(await initiate(key));
    const byKey = keys.map((key, i) => ({ key, id: ids[i] as string })).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.id < y.id ? -1 : 1));
    const list = async (query: [string, string][]) => (await signed(strict.endpoint, 'GET', '', [['uploads', ''], ...query])).body;

    // No prefix, two a page: markers move through every upload, the same key's two by upload id.
    const seen: string[] = [];
    let markers: [string, string][] = [];
    for (let page = 0; page < 10; page++) {
      const xml = await list([['max-uploads', '2'], ...markers]);
      expect(xml).toMatch(/^<\?xml[^>]*\?>\s*<ListMultipartUploadsResult /);
      const uploads = all(xml, 'UploadId');
      seen.push(...all(xml, 'Key').map((key, i) => `${key} ${uploads[i]}`));
      if (all(xml, 'IsTruncated')[0] !== 'true') break;
      markers = [['key-marker', all(xml, 'NextKeyMarker')[0] as string], ['upload-id-marker', all(xml, 'NextUploadIdMarker')[0] as string]];
    }
    expect(seen).toEqual(byKey.map(({ key, id }) => `${key} ${id}`));
    // A key marker alone: only later keys.
    expect(all(await list([['key-marker', 'b/x/3.bin']]), 'Key')).toEqual(['c.bin', 'd/4.bin']);
    // A prefix and a delimiter: keys rolled up into common prefixes, each one entry of a page.
    const rolled = await list([['delimiter', '/']]);
    expect(all(rolled, 'Key')).toEqual(['c.bin']);
    expect([...rolled.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1])).toEqual(['a/', 'b/', 'd/']);
    const paged = await list([['delimiter', '/'], ['max-uploads', '1']]);
    expect([all(paged, 'IsTruncated')[0], all(paged, 'NextKeyMarker')[0]]).toEqual(['true', 'a/']);
    expect(all(await list([['delimiter', '/'], ['key-marker', 'a/']]), 'Prefix').slice(1)).toEqual(['b/', 'd/']);
    expect(all(await list([['prefix', 'b/'], ['delimiter', '/']]), 'Prefix')).toEqual(['b/', 'b/x/']);
    expect((await signed(strict.endpoint, 'GET', '', [['uploads', ''], ['max-uploads', 'x']])).status).toBe(400);

    // ListParts: the parts in order, paged; an upload of another key is not there.
    const [key, id] = [keys[0] as string, ids[0] as string];
    for (const n of [2, 1, 3]) expect((await signed(strict.endpoint, 'PUT', key, [['partNumber', String(n)], ['uploadId', id]], Buffer.alloc(n * 10, n))).status).toBe(200);
    const first = (await signed(strict.endpoint, 'GET', key, [['uploadId', id], ['max-parts', '2']])).body;
    expect([all(first, 'PartNumber'), all(first, 'Size'), all(first, 'IsTruncated'), all(first, 'NextPartNumberMarker')]).toEqual([['1', '2'], ['10', '20'], ['true'], ['2']]);
    const rest = (await signed(strict.endpoint, 'GET', key, [['uploadId', id], ['part-number-marker', '2']])).body;
    expect([all(rest, 'PartNumber'), all(rest, 'IsTruncated')]).toEqual([['3'], ['false']]);
    const other = await signed(strict.endpoint, 'GET', 'c.bin', [['uploadId', id]]);
    expect([other.status, all(other.body, 'Code')]).toEqual([404, ['NoSuchUpload']]);

    // Abort: 204, then the upload and its parts are gone (404 NoSuchUpload for a second abort, a part or a listing of it).
    expect((await signed(strict.endpoint, 'DELETE', key, [['uploadId', id]])).status).toBe(204);
    for (const again of [
      await signed(strict.endpoint, 'DELETE', key, [['uploadId', id]]),
      await signed(strict.endpoint, 'GET', key, [['uploadId', id]]),
      await signed(strict.endpoint, 'PUT', key, [['partNumber', '4'], ['uploadId', id]], Buffer.from('late')),
    ]) expect([again.status, all(again.body, 'Code')]).toEqual([404, ['NoSuchUpload']]);
    expect((await strict.multipartUploads(BUCKET)).map((u) => u.uploadId)).not.toContain(id);
    expect(all(await list([]), 'Key')).toEqual(byKey.filter((u) => u.id !== id).map((u) => u.key));

    // Backdating (the tests' clock for an old upload): its initiation and its parts.
    const when = new Date('2026-01-02T03:04:05Z');
    await signed(strict.endpoint, 'PUT', 'c.bin', [['partNumber', '1'], ['uploadId', ids[4] as string]], Buffer.from('part'));
    await strict.backdateUpload(BUCKET, ids[4] as string, when);
    expect(all(await list([['prefix', 'c']]), 'Initiated')).toEqual([when.toISOString()]);
    expect(all((await signed(strict.endpoint, 'GET', 'c.bin', [['uploadId', ids[4] as string]])).body, 'LastModified')).toEqual([when.toISOString()]);
    expect(strict.signatureFailures()).toBe(0);
  } finally {
    await strict.stop();
  }
});
