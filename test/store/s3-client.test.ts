// The S3 client over real HTTP on 127.0.0.1, against s3rver behind the strict proxy of
// test/helpers/s3server.ts (conditional writes, UploadPartCopy, R2's part rule, SigV4 checked).
import { randomBytes, createHash } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoSuchKey, PreconditionFailed, S3Client, S3Error, xmlRootName, type S3ClientConfig } from '../../src/store/s3/client.js';
import { mapLimit } from '../../src/store/limit.js';
import { EMPTY_SHA256, sha256Hex, signRequest, uriEncode } from '../../src/store/s3/sigv4.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server, type StrictS3TestServer } from '../helpers/s3server.js';

const BUCKET = 'client-test';
const MiB = 1024 * 1024;

let server: StrictS3TestServer;
let client: S3Client;
let work: string;
const clients: S3Client[] = [];

function makeClient(overrides: Partial<S3ClientConfig> = {}): S3Client {
  const made = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other',
    accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY, retryBaseMs: 5, ...overrides,
  });
  clients.push(made);
  return made;
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'persist-s3client-'));
  server = await startStrictS3Server([BUCKET]);
  client = makeClient();
});

afterAll(async () => {
  for (const made of clients) made.close();
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const ODD_KEYS = [
  'plain.txt',
  'with space/and  two spaces.txt',
  'unicodé/日本語/😀.bin',
  'plus+sign+.txt',
  'percent%20literal%.txt',
  "punct!'()*~=,;:@$.txt",
  'amp&lt;tag>"q".txt',
];

describe('S3Client over HTTP', () => {
  it('puts, gets, heads and lists keys that need encoding, every request signed correctly', async () => {
    for (const [i, key] of ODD_KEYS.entries()) {
      const body = Buffer.from(`content ${i} of ${key}`);
      const { etag } = await client.put(`odd/${key}`, body, { contentType: 'text/plain', metadata: { mode: '644' } });
      expect(etag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);
      expect(await client.get(`odd/${key}`)).toEqual(body);
      const head = await client.head(`odd/${key}`);
      expect(head).toMatchObject({ size: body.length, etag, metadata: { mode: '644' } });
    }
    const listed = (await client.listAll('odd/')).map((o) => o.key).sort();
    expect(listed).toEqual(ODD_KEYS.map((k) => `odd/${k}`).sort());
    const pages = [];
    for await (const page of client.list('odd/', { delimiter: '/' })) pages.push(page);
    expect(pages.flatMap((p) => p.prefixes).sort()).toEqual(['odd/unicodé/', 'odd/with space/']);
    expect(await client.head('odd/absent')).toBeNull();
    await expect(client.get('odd/absent')).rejects.toBeInstanceOf(NoSuchKey);
    expect(server.signatureFailures()).toBe(0);
  });

  it('lists more than 1,000 keys over several pages, from a start-after key too', async () => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')} é+.txt`);
    await mapLimit(keys, 16, (key) => client.put(key, Buffer.from(key)));
    let pages = 0;
    const seen: string[] = [];
    for await (const page of client.list('many/')) {
      pages++;
      seen.push(...page.objects.map((o) => o.key));
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(keys);
    const after = (await collect(client.list('many/', { startAfter: keys[1049] }))).flatMap((p) => p.objects.map((o) => o.key));
    expect(after).toEqual(keys.slice(1050));
  });

  it('reads byte ranges', async () => {
    const body = Buffer.from('0123456789abcdefghij');
    await client.put('range/r.bin', body);
    expect((await client.get('range/r.bin', { range: { start: 5, end: 9 } })).toString()).toBe('56789');
    expect((await client.get('range/r.bin', { range: { start: 15 } })).toString()).toBe('fghij');
    const file = join(work, 'range.out');
    expect(await client.getToFile('range/r.bin', file, { range: { start: 0, end: 3 } })).toMatchObject({ size: 4 });
    expect(await readFile(file, 'utf8')).toBe('0123');
  });

  it('deletes 1,500 keys in two DeleteObjects requests, and single keys', async () => {
    const keys = Array.from({ length: 1500 }, (_, i) => `del/${i} +&<.txt`);
    await mapLimit(keys, 8, (key) => server.putObject(BUCKET, key, Buffer.from('x')));
    server.resetCounts();
    expect(await client.deleteMany(keys)).toEqual({ deleted: 1500 });
    expect(server.stats().requests).toEqual({ POST: 2 });
    expect((await server.listObjects(BUCKET)).filter((k) => k.startsWith('del/'))).toEqual([]);
    await client.put('del/one', Buffer.from('1'));
    await client.delete('del/one');
    await client.delete('del/one');
    expect(await client.head('del/one')).toBeNull();
  });

  it('copies an object server-side, keys with + and & included', async () => {
    await client.put('copy/src +&?#.txt', Buffer.from('copied'));
    await client.copy('copy/src +&?#.txt', 'copy/dst é+.txt');
    expect((await client.get('copy/dst é+.txt')).toString()).toBe('copied');
    await expect(client.copy('copy/src +&?#.txt', 'copy/dst é+.txt', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(PreconditionFailed);
  });

  it('create-only puts: of 10 concurrent ones exactly one wins', async () => {
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.put('cas/lease', Buffer.from(`holder ${i}`), { ifNoneMatch: '*' })));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(PreconditionFailed);
    expect((await client.get('cas/lease')).toString()).toBe(`holder ${won[0]}`);
  });

  it('If-Match replaces only the ETag it names; a missing key fails the precondition', async () => {
    const first = await client.put('cas/renew', Buffer.from('v1'), { ifNoneMatch: '*' });
    const second = await client.put('cas/renew', Buffer.from('v2'), { ifMatch: first.etag });
    expect(second.etag).not.toBe(first.etag);
    const stale = await client.put('cas/renew', Buffer.from('v3'), { ifMatch: first.etag }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(PreconditionFailed);
    expect((stale as PreconditionFailed).status).toBe(412);
    expect(String((stale as Error).message)).toMatch(/put of "cas\/renew" failed: HTTP 412 PreconditionFailed/);
    await expect(client.put('cas/none', Buffer.from('x'), { ifMatch: first.etag })).rejects.toBeInstanceOf(PreconditionFailed);
    // 10 renewals racing on one ETag: one wins.
    const race = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => client.put('cas/renew', Buffer.from(`r${i}`), { ifMatch: second.etag })));
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await client.get('cas/renew')).toString()).toMatch(/^r\d$/);
  });

  it('uploads a 12 MiB file in equal parts and reads it back byte for byte', async () => {
    const data = randomBytes(12 * MiB);
    const file = join(work, 'big.bin');
    await writeFile(file, data);
    server.resetCounts();
    await client.putLarge('big/twelve.bin', file, { partSize: 5 * MiB });
    expect(server.stats().requests).toEqual({ POST: 2, PUT: 3 });
    const out = join(work, 'big.out');
    expect(await client.getToFile('big/twelve.bin', out)).toMatchObject({ size: data.length });
    expect(sha(await readFile(out))).toBe(sha(data));
    expect((await client.head('big/twelve.bin'))?.size).toBe(data.length);
  });

  it('appends to a 20 MiB object by copying its prefix server-side and uploading the tail', async () => {
    const old = randomBytes(20 * MiB);
    await server.putObject(BUCKET, 'append/transcript.jsonl', old);
    const head = await client.head('append/transcript.jsonl');
    const grown = Buffer.concat([old, randomBytes(1024)]);
    const file = join(work, 'grown.jsonl');
    await writeFile(file, grown);
    server.resetCounts();
    const partSize = 8 * MiB;
    const result = await client.appendByCopy('append/transcript.jsonl', old.length, file, { partSize, sourceEtag: head?.etag as string });
    expect(result).toMatchObject({ copiedBytes: 16 * MiB, uploadedBytes: 4 * MiB + 1024 });
    const stats = server.stats();
    expect(stats.bytesIn.PUT).toBe(4 * MiB + 1024);
    expect(stats.bytesIn.PUT).toBeLessThanOrEqual(partSize + 1024);
    expect(stats.totalBytesIn).toBeLessThan(partSize + 1024 + 4096);
    expect(sha(await client.get('append/transcript.jsonl'))).toBe(sha(grown));
    // The object changed meanwhile: the copy parts refuse, the upload is aborted.
    await expect(client.appendByCopy('append/transcript.jsonl', old.length, file, { partSize, sourceEtag: head?.etag as string })).rejects.toBeInstanceOf(PreconditionFailed);
    expect(sha(await client.get('append/transcript.jsonl'))).toBe(sha(grown));
    expect((await server.multipartUploads(BUCKET)).filter((u) => u.key === 'append/transcript.jsonl')).toEqual([]);
  });

  it('streams large objects into files one after another on one connection', async () => {
    const data = randomBytes(24 * MiB);
    await client.put('large/one.bin', data);
    const single = makeClient({ maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      const file = join(work, `large-${i}.bin`);
      const got = await single.getObject('large/one.bin', file, { bufferUpTo: MiB });
      expect([got.data, got.size, got.sha256]).toEqual([null, data.length, sha(data)]);
      expect(sha(await readFile(file))).toBe(sha(data));
    }
  });

  it('the test server refuses parts of unequal size, as R2 does', async () => {
    const key = 'r2rule/uneven.bin';
    const created = await raw('POST', key, [['uploads', '']]);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1] as string;
    const sizes = [5 * MiB + 1, 5 * MiB, 10];
    const etags: string[] = [];
    for (const [i, size] of sizes.entries()) {
      const answer = await raw('PUT', key, [['partNumber', String(i + 1)], ['uploadId', uploadId]], Buffer.alloc(size, i));
      etags.push(answer.etag);
    }
    const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
    const refused = await raw('POST', key, [['uploadId', uploadId]], Buffer.from(xml));
    expect(refused.status).toBe(400);
    expect(refused.body).toContain('All non-trailing parts must have the same length.');
  });

  it('retries 503 SlowDown and reset connections, then gives up naming the code', async () => {
    server.injectFailures({ count: 2, method: 'PUT', status: 503, code: 'SlowDown' });
    await client.put('retry/a', Buffer.from('a'));
    server.injectFailures({ count: 1, method: 'GET', kind: 'reset' });
    expect((await client.get('retry/a')).toString()).toBe('a');
    const before = server.stats().injected;
    const impatient = makeClient({ maxAttempts: 3 });
    server.injectFailures({ count: 3, method: 'PUT', status: 503, code: 'SlowDown' });
    const error = await impatient.put('retry/b', Buffer.from('b')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(S3Error);
    expect((error as S3Error).message).toBe('S3 put of "retry/b" failed: HTTP 503 SlowDown: injected by the test proxy (after 3 attempts)');
    expect(server.stats().injected - before).toBe(3);
    expect(await client.head('retry/b')).toBeNull();
  });

  it('never puts the secret or the signature in an error', async () => {
    const secret = 'wJalrXUtnFEMI-very-secret-value';
    const wrong = makeClient({ secretAccessKey: secret });
    const error = (await wrong.get('odd/plain.txt').catch((e: unknown) => e)) as S3Error;
    expect(error).toBeInstanceOf(S3Error);
    expect(error.status).toBe(403);
    expect(error.code).toBe('SignatureDoesNotMatch');
    const closed = makeClient({ endpoint: 'http://127.0.0.1:1', secretAccessKey: secret, maxAttempts: 2 });
    const network = (await closed.put('x', Buffer.from('x')).catch((e: unknown) => e)) as S3Error;
    expect(network.code).toBe('ECONNREFUSED');
    expect(network.message).toMatch(/^S3 put of "x" failed: ECONNREFUSED/);
    for (const text of [error.message, inspect(error), JSON.stringify(error), network.message, inspect(network), inspect(wrong)]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain('Signature=');
      expect(text).not.toContain('Credential=');
    }
  });

  it('lists incomplete multipart uploads page by page and their parts, and aborts them (an absent one: false)', async () => {
    const badSignatures = server.signatureFailures();
    const keys = ['mpu/a é+.bin', 'mpu/b.bin', 'mpu/b.bin', 'mpu/sub/c.bin', 'mpu/sub/d.bin'];
    const ids: string[] = [];
    for (const key of keys) {
      const created = await raw('POST', key, [['uploads', '']]);
      ids.push(/<UploadId>([^<]+)<\/UploadId>/.exec(created.body)?.[1] as string);
    }
    await raw('POST', 'elsewhere/e.bin', [['uploads', '']]);
    const sizes = [5 * MiB, 5 * MiB, 1000];
    for (const [i, size] of sizes.entries()) await raw('PUT', keys[1] as string, [['partNumber', String(i + 1)], ['uploadId', ids[1] as string]], Buffer.alloc(size, i));
    const expected = keys.map((key, i) => [key, ids[i]]).sort(([ka, ia], [kb, ib]) => Buffer.compare(Buffer.from(`${ka}\0${ia}`), Buffer.from(`${kb}\0${ib}`)));

    server.resetCounts();
    const pages = await collect(client.listMultipartUploads('mpu/', { maxUploads: 2 }));
    expect(pages.map((page) => page.length)).toEqual([2, 2, 1]);
    expect(server.stats().requests).toEqual({ GET: 3 });
    expect(pages.flat().map((u) => [u.key, u.uploadId])).toEqual(expected);
    for (const upload of pages.flat()) expect(Math.abs(Date.parse(upload.initiated) - Date.now())).toBeLessThan(60_000);
    expect((await client.listAllMultipartUploads('mpu/sub/')).map((u) => u.key)).toEqual(['mpu/sub/c.bin', 'mpu/sub/d.bin']);

    const parts = await client.listParts(keys[1] as string, ids[1] as string, { maxParts: 2 });
    expect(parts?.map((p) => [p.partNumber, p.size])).toEqual([[1, 5 * MiB], [2, 5 * MiB], [3, 1000]]);
    expect(parts?.[2]?.etag).toBe(`"${createHash('md5').update(Buffer.alloc(1000, 2)).digest('hex')}"`);
    expect(await client.listParts(keys[0] as string, ids[0] as string)).toEqual([]);
    expect(await client.listParts(keys[0] as string, ids[1] as string)).toBeNull(); // an upload of another key

    for (const [i, key] of keys.entries()) expect(await client.abortMultipartUpload(key, ids[i] as string)).toBe(true);
    expect(await client.abortMultipartUpload(keys[0] as string, ids[0] as string)).toBe(false);
    expect(await client.listParts(keys[1] as string, ids[1] as string)).toBeNull();
    expect(await client.listAllMultipartUploads('mpu/')).toEqual([]);
    const left = (await server.multipartUploads(BUCKET)).map((u) => u.key);
    expect(left.filter((key) => key.startsWith('mpu/'))).toEqual([]);
    expect(left).toContain('elsewhere/e.bin');
    expect(server.signatureFailures()).toBe(badSignatures);
  });

  it('refuses an endpoint that is not an S3 API (a web server answering every request 200 with a page), naming it, without retrying', async () => {
    let served = 0;
    const web: Server = createServer((req, res) => {
      served++;
      req.resume();
      // One path echoes the request's headers back, as a debugging endpoint would.
      const body = req.url?.includes('echo') ? `<html><pre>${JSON.stringify(req.headers)}</pre></html>` : '<html><body>Welcome to nginx!</body></html>';
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(body);
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
    try {
      const endpoint = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
      const secret = 'wJalrXUtnFEMI-not-s3-secret';
      const nginx = makeClient({ endpoint, secretAccessKey: secret });
      const list = (await collect(nginx.list('kill1/', { maxKeys: 1 })).catch((e: unknown) => e)) as S3Error;
      expect(list).toBeInstanceOf(S3Error);
      expect(list.code).toBe('S3_BAD_ANSWER');
      expect(list.message).toBe(
        `S3 list of "kill1/" failed: the answer of ${endpoint} is not S3's (expected a ListBucketResult XML document, got HTTP 200 text/html: <html><body>Welcome to nginx!</body></html>); is the endpoint an S3 API?`,
      );
      expect(served).toBe(1);
      const file = join(work, 'not-s3.bin');
      await writeFile(file, randomBytes(6 * MiB));
      const refusals: [() => Promise<unknown>, string][] = [
        [() => nginx.deleteMany(['a', 'b']), 'DeleteResult XML document'],
        [() => nginx.copy('a', 'b'), 'CopyObjectResult XML document'],
        [() => nginx.putLarge('big', file, { partSize: 5 * MiB }), 'InitiateMultipartUploadResult XML document'],
        [() => collect(nginx.listMultipartUploads('kill1/')), 'ListMultipartUploadsResult XML document'],
        [() => nginx.listParts('k', 'id'), 'ListPartsResult XML document'],
        [() => nginx.put('k', Buffer.from('x')), 'ETag header'],
        // An object read answered with a page and no ETag (S3 always names an object's ETag).
        [() => nginx.get('kill1/.persist-sync.json'), "object's ETag header"],
        [() => nginx.head('kill1/.persist-sync.json'), "object's ETag header"],
        [() => nginx.getObject('kill1/.persist-sync.json', join(work, 'page.out'), { bufferUpTo: 1024 }), "object's ETag header"],
      ];
      for (const [attempt, expected] of refusals) {
        const error = (await attempt().catch((e: unknown) => e)) as S3Error;
        expect(error).toBeInstanceOf(S3Error);
        expect(error.code).toBe('S3_BAD_ANSWER');
        expect(error.message).toContain(`(expected a${/^[EIo]/.test(expected) ? 'n' : ''} ${expected}, got HTTP 200 text/html`);
      }
      expect(served).toBe(1 + refusals.length);
      const echoed = (await nginx.copy('echo', 'echo2').catch((e: unknown) => e)) as S3Error;
      expect(echoed.message).toContain('is not S3');
      for (const text of [echoed.message, inspect(echoed)]) {
        expect(text).not.toContain(secret);
        expect(text).not.toMatch(/Signature=[0-9a-f]/);
        expect(text).not.toMatch(/Credential=[A-Z]/);
      }
    } finally {
      web.closeAllConnections();
      await new Promise<void>((resolve) => web.close(() => resolve()));
    }
  });

  it('knows an XML document by its root element', () => {
    expect(xmlRootName('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name></ListBucketResult>')).toBe('ListBucketResult');
    expect(xmlRootName('\uFEFF  <!-- a comment --><!DOCTYPE x><s3:DeleteResult xmlns:s3="x"/>')).toBe('DeleteResult');
    expect(xmlRootName('<ListBucketResult>')).toBe('ListBucketResult');
    expect(xmlRootName('<html><body>Welcome to nginx!</body></html>')).toBe('html');
    expect(xmlRootName('{"json": true}')).toBe('');
    expect(xmlRootName('')).toBe('');
    expect(xmlRootName('<?xml version="1.0"')).toBe('');
  });

  it('times out a request that gets no answer', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    try {
      const slow = makeClient({ endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 200, maxAttempts: 2 });
      const started = Date.now();
      const error = (await slow.head('k').catch((e: unknown) => e)) as S3Error;
      expect(error.code).toBe('ETIMEDOUT');
      expect(error.message).toContain('(after 2 attempts)');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

async function collect<T>(iterator: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterator) out.push(item);
  return out;
}

/** One signed request outside the client (to reach the test server with what the client never sends). */
function raw(method: string, key: string, query: [string, string][], body?: Buffer): Promise<{ status: number; body: string; etag: string }> {
  const url = new URL(server.endpoint);
  const path = `/${BUCKET}/${uriEncode(key, true)}`;
  const signed = signRequest({
    method, path, query, headers: { host: url.host, 'content-length': String(body?.length ?? 0) },
    payloadHash: body ? sha256Hex(body) : EMPTY_SHA256, region: 'us-east-1', accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY,
  });
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: `${path}?${signed.queryString}`, headers: signed.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), etag: String(res.headers.etag ?? '') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
