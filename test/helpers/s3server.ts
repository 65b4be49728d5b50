// A real S3 server (s3rver) on loopback for end-to-end tests: its own temporary folder, a free
// port, and a count of the write requests it has seen (to prove that observing writes nothing).
//
// `startStrictS3Server` puts an HTTP proxy (also on 127.0.0.1, a free port) in front of s3rver that
// adds what s3rver lacks and R2/S3 do, as the S3 documentation specifies (see the proxy's comment
// below): conditional PUTs (`If-None-Match: *` -> 412 on an existing key, `If-Match` -> 412 on
// another ETag, 404 NoSuchKey on a missing key; also on CompleteMultipartUpload and copies), atomic
// per key (the proxy serializes every write of a key); `UploadPartCopy` (with
// `x-amz-copy-source-range` and `x-amz-copy-source-if-match`); R2's multipart rule (every part but
// the last the same size, and at least 5 MiB, else CompleteMultipartUpload fails with 400); a
// SigV4 check of every signed request, computed independently of src/ (403 SignatureDoesNotMatch);
// ListMultipartUploads, ListParts and AbortMultipartUpload (s3rver keeps incomplete uploads but
// answers none of them), with a way to backdate an upload; counts of requests and of body bytes
// received per method; and injected failures (an HTTP status such as 503 SlowDown, or a reset
// connection) for the next matching requests.
import { createHash, createHmac } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** s3rver's built-in keys. */
export const S3RVER_ACCESS_KEY = 'S3RVER';
export const S3RVER_SECRET_KEY = 'S3RVER';

const WRITE_METHODS = new Set(['PUT', 'POST', 'DELETE']);

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer: Server;
}

export interface RecordedRequest {
  method: string;
  url: string;
  /** The strict server: when it received the request and when its answer was sent, in µs of the monotonic clock (process.hrtime, the same in every process), for benchmarks. */
  receivedUs?: number;
  answeredUs?: number;
}

export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** Folder where s3rver keeps buckets and objects. */
  directory: string;
  /** Create a bucket (directly in the store, no request counted). */
  createBucket(name: string): Promise<void>;
  /** PUT, POST and DELETE requests seen since the last reset. */
  writeCount(): number;
  /** Every request seen since the last reset. */
  requests(): RecordedRequest[];
  resetCounts(): void;
  /** An object's content, read straight from the store (no request counted); null when absent. */
  getObject(bucket: string, key: string): Promise<Buffer | null>;
  /** Store an object straight into the store (no request counted), as another machine would have. */
  putObject(bucket: string, key: string, content: Buffer): Promise<void>;
  /** Keys in a bucket, read straight from the store. */
  listObjects(bucket: string): Promise<string[]>;
  /** Remove an object straight from the store (no request counted), as another machine would have. */
  deleteObject(bucket: string, key: string): Promise<void>;
  stop(): Promise<void>;
}

interface FilesystemStore {
  putBucket(name: string): Promise<unknown>;
  getBucket(name: string): Promise<unknown>;
  getMetadata(bucket: string, key: string): Promise<Record<string, string | number>>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putObject(object: unknown): Promise<unknown>;
  putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
  getObject(bucket: string, key: string): Promise<{ content: NodeJS.ReadableStream } | null>;
  listObjects(bucket: string, options: ListOptions): Promise<ListResult>;
  deleteObject(bucket: string, key: string): Promise<void>;
}

interface ListOptions {
  delimiter?: string;
  prefix?: string;
  startAfter?: string;
  maxKeys?: number;
}

interface ListResult {
  objects: { key: string; size?: number; metadata?: Record<string, string | number> }[];
  commonPrefixes?: string[];
  isTruncated?: boolean;
}

/**
 * s3rver 3.7's putObject resolves (and its PUT answers 200) once it has handed the bytes to its
 * file stream, before the stream has written them: a GET right after can read a short object
 * (seen on a busy machine: a 17 MiB object read back as its first 8 MiB). The same steps here,
 * finished only once the file holds every byte.
 */
function fixPutObjectDurability(store: FilesystemStore): void {
  store.putObject = async (object) => {
    const { bucket, key, content, metadata } = object as { bucket: string; key: string; content: Buffer | Readable; metadata: Record<string, string> };
    const objectPath = store.getResourcePath(bucket, key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    const md5 = createHash('md5');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    await pipeline(Buffer.isBuffer(content) ? Readable.from([content]) : content, counter, createWriteStream(objectPath));
    const digest = md5.digest('hex');
    await store.putMetadata(bucket, key, metadata, digest);
    return { size, md5: digest };
  };
}

/**
 * s3rver 3.7 writes an object's `.md5` and `metadata.json` files in place, and every listing reads
 * the metadata of each key it returns: a listing while a PUT of a listed key was under way read a
 * half-written file and failed (`Unexpected end of JSON input`, a 500 to the client; seen in CI
 * while s3fs adopted a folder). Here both are written in `scratch` (outside the buckets, which a
 * listing walks; same file system) and renamed over.
 */
function fixMetadataWrites(store: FilesystemStore, scratch: string): void {
  const { ALLOWED_METADATA } = require('s3rver/lib/models/object') as { ALLOWED_METADATA: string[] };
  let written = 0;
  const replace = async (path: string, content: string) => {
    const temporary = join(scratch, String(written++));
    await writeFile(temporary, content);
    await rename(temporary, path);
  };
  store.putMetadata = async (bucket, key, metadata, md5) => {
    const json = Object.fromEntries(Object.entries(metadata).filter(([name]) => ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')));
    if (md5) await replace(store.getResourcePath(bucket, key, 'object.md5'), md5);
    await replace(store.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
  };
}

/**
 * s3rver 3.7 removes a deleted key's emptied folders with a readdir then an rmdir, so two deletes
 * in one folder race and one fails (a 500, e.g. within one DeleteObjects); and a listing walks the
 * folders with a readdir then a stat of each name, so a key deleted in between fails it (ENOENT, a
 * 500). S3 fails neither: this delete tolerates the race, and a listing that met it walks again.
 */
function fixDeleteRaces(store: FilesystemStore, directory: string): void {
  store.deleteObject = async (bucket, key) => {
    const objectPath = store.getResourcePath(bucket, key, 'object');
    await Promise.all(
      ['object', 'object.md5', 'metadata.json'].map((resource) =>
        unlink(store.getResourcePath(bucket, key, resource)).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        }),
      ),
    );
    const bucketPath = join(directory, bucket);
    for (let folder = dirname(objectPath); folder.startsWith(`${bucketPath}/`); folder = dirname(folder)) {
      try {
        await rmdir(folder);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') break;
      }
    }
  };
  const list = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await list(bucket, options);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 10) throw error;
      }
    }
  };
}

/**
 * s3rver 3.7 prunes its directory walk below the first delimiter after the prefix, so a key two
 * or more levels down (`a/b/c.txt` listed with prefix `` and delimiter `/`) yields no common
 * prefix `a/` at all: clients that list with a delimiter (rclone) then miss whole folders. This
 * lists without the delimiter and groups the keys itself, with s3rver's own paging (maxKeys
 * counts objects).
 */
function fixDelimiterListing(store: FilesystemStore): void {
  const original = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const { delimiter, prefix = '', startAfter = '', maxKeys = Infinity } = options;
    if (!delimiter) return original(bucket, options);
    const all = await original(bucket, { ...options, delimiter: '', maxKeys: Infinity });
    const objects: { key: string }[] = [];
    const commonPrefixes = new Set<string>();
    let isTruncated = false;
    for (const object of all.objects) {
      const index = object.key.slice(prefix.length).indexOf(delimiter);
      if (index !== -1) {
        const common = object.key.slice(0, prefix.length + index + delimiter.length);
        if (common > startAfter) commonPrefixes.add(common);
      } else if (objects.length < maxKeys) {
        objects.push(object);
      } else {
        isTruncated = true;
        break;
      }
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
  };
}

export async function startS3Server(buckets: string[] = []): Promise<S3TestServer> {
  return (await launchS3rver(buckets)).api;
}

/**
 * s3rver makes the continuation token of a truncated ListObjectsV2 page with DES, which Node 20's
 * OpenSSL 3 no longer has: every truncated listing (more keys than max-keys, e.g. the S3 store's
 * one-key look at a folder) answered 500. The token is opaque to clients, so DES is replaced by
 * the identity here; nothing else in a test process uses DES. (The strict server answers listings
 * itself: see listV2 below.)
 */
function allowS3rverTokens(): void {
  const crypto = require('node:crypto') as Record<'createCipheriv' | 'createDecipheriv', (algorithm: string, ...rest: unknown[]) => unknown> & { desIdentity?: boolean };
  if (crypto.desIdentity) return;
  crypto.desIdentity = true;
  for (const name of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = crypto[name];
    crypto[name] = (algorithm, ...rest) =>
      algorithm === 'des' ? { update: (data: string | Buffer, encoding?: BufferEncoding) => (typeof data === 'string' ? Buffer.from(data, encoding) : data), final: () => Buffer.alloc(0) } : original(algorithm, ...rest);
  }
}

async function launchS3rver(buckets: string[]): Promise<{ api: S3TestServer; store: FilesystemStore }> {
  allowS3rverTokens();
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverInstance & { store: FilesystemStore };
  const directory = await mkdtemp(join(tmpdir(), 'persist-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    // Path-style only: a vhost middleware would read `127.0.0.1` as nothing, but be explicit.
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const scratch = await mkdtemp(join(tmpdir(), 'persist-s3rver-scratch-'));
  fixMetadataWrites(server.store, scratch);
  fixDeleteRaces(server.store, directory);
  fixDelimiterListing(server.store);
  fixPutObjectDurability(server.store);
  const address = await server.run();
  const port = address.port;
  let seen: RecordedRequest[] = [];
  server.httpServer.prependListener('request', (req: IncomingMessage) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '' });
  });
  const api: S3TestServer = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    async createBucket(name) {
      await server.store.putBucket(name);
    },
    writeCount: () => seen.filter((r) => WRITE_METHODS.has(r.method)).length,
    requests: () => [...seen],
    resetCounts() {
      seen = [];
    },
    async getObject(bucket, key) {
      const object = await server.store.getObject(bucket, key);
      if (!object) return null;
      const chunks: Buffer[] = [];
      for await (const chunk of object.content) chunks.push(Buffer.from(chunk as Buffer));
      return Buffer.concat(chunks);
    },
    async putObject(bucket, key, content) {
      const S3Object = require('s3rver/lib/models/object') as new (bucket: string, key: string, content: Buffer, metadata: Record<string, string>) => unknown;
      await server.store.putObject(new S3Object(bucket, key, content, { 'content-length': String(content.length) }));
    },
    async listObjects(bucket) {
      const result = await server.store.listObjects(bucket, { maxKeys: 10_000 });
      return result.objects.map((o) => o.key).sort();
    },
    async deleteObject(bucket, key) {
      await server.store.deleteObject(bucket, key);
    },
    async stop() {
      server.httpServer.closeAllConnections?.();
      await server.close();
      await rm(directory, { recursive: true, force: true });
      await rm(scratch, { recursive: true, force: true });
    },
  };
  return { api, store: server.store };
}

// --- the strict proxy ---------------------------------------------------------------------------

/** A failure the proxy answers instead of forwarding, for the next `count` matching requests. */
export interface InjectedFailure {
  /** How many requests to fail (default 1). */
  count?: number;
  /** Only requests of this method (default: any). */
  method?: string;
  /** Only requests whose URL (path and query, as sent) this returns true for. */
  match?: (url: string, method: string) => boolean;
  /** `status` (default): answer `status` with an S3 error body; `reset`: destroy the connection. */
  kind?: 'status' | 'reset';
  status?: number;
  code?: string;
}

export interface TrafficStats {
  /** Requests received, per method. */
  requests: Record<string, number>;
  /** Request body bytes received, per method. */
  bytesIn: Record<string, number>;
  totalBytesIn: number;
  /** Requests answered by an injected failure. */
  injected: number;
}

/** An incomplete multipart upload as the strict server holds it. */
export interface StoredUpload {
  key: string;
  uploadId: string;
  initiated: Date;
  /** Its parts: numbers, sizes and when each was written. */
  parts: { partNumber: number; size: number; etag: string; lastModified: Date }[];
}

export interface StrictS3TestServer extends S3TestServer {
  /** s3rver itself, behind the proxy (requests there are not counted by `stats`). */
  upstreamEndpoint: string;
  stats(): TrafficStats;
  injectFailures(failure: InjectedFailure): void;
  /** Signed requests whose signature did not verify (each answered 403 SignatureDoesNotMatch). */
  signatureFailures(): number;
  /** The incomplete multipart uploads of a bucket, read straight from the store (no request counted), by key then upload id. */
  multipartUploads(bucket: string): Promise<StoredUpload[]>;
  /** Makes an incomplete upload (its initiation and every part it holds) look as if it was written at `when`: the test's clock for "an old upload". */
  backdateUpload(bucket: string, uploadId: string, when: Date): Promise<void>;
}

/** S3's minimum part size (all parts but the last), enforced by the proxy like S3 and R2. */
export const STRICT_MIN_PART_SIZE = 5 * 1024 * 1024;

const KNOWN_SECRETS: Record<string, string> = { [S3RVER_ACCESS_KEY]: S3RVER_SECRET_KEY };

function s3ErrorXml(code: string, message: string, extra: Record<string, string> = {}): string {
  const fields = Object.entries(extra).map(([name, value]) => `<${name}>${xmlText(value)}</${name}>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlText(message)}</Message>${fields}<RequestId>strict-proxy</RequestId></Error>`;
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function sendXml(res: ServerResponse, status: number, xml: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(xml, 'utf8');
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': String(body.length), ...headers });
  res.end(body);
}

/** RFC 3986 encoding byte by byte (written apart from src/store/s3/sigv4.ts, to check it). */
function strictEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** null when the request verifies (or is not SigV4-signed), else the reason. */
function checkSignature(req: IncomingMessage, rawPath: string, rawQuery: string): string | null {
  const authorization = req.headers.authorization;
  if (!authorization || !authorization.startsWith('AWS4-HMAC-SHA256')) return null;
  const parsed = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(authorization);
  if (!parsed) return 'malformed Authorization header';
  const [, accessKey, day, region, service, signedHeaders, signature] = parsed as unknown as string[];
  const secret = KNOWN_SECRETS[accessKey as string];
  if (secret === undefined) return 'unknown access key';
  const date = req.headers['x-amz-date'];
  const payload = req.headers['x-amz-content-sha256'];
  if (typeof date !== 'string' || !date.startsWith(day as string)) return 'x-amz-date missing or not of the credential day';
  if (typeof payload !== 'string') return 'x-amz-content-sha256 missing';
  let uri: string;
  let query: string;
  try {
    uri = rawPath.split('/').map((segment) => strictEncode(decodeURIComponent(segment))).join('/');
    query = rawQuery
      ? rawQuery
          .split('&')
          .map((pair) => {
            const at = pair.indexOf('=');
            const name = at === -1 ? pair : pair.slice(0, at);
            const value = at === -1 ? '' : pair.slice(at + 1);
            return `${strictEncode(decodeURIComponent(name))}=${strictEncode(decodeURIComponent(value))}`;
          })
          .sort()
          .join('&')
      : '';
  } catch {
    return 'undecodable URL';
  }
  const headerLines = (signedHeaders as string).split(';').map((name) => {
    const value = req.headers[name];
    return `${name}:${(Array.isArray(value) ? value.join(',') : (value ?? '')).trim().replace(/\s+/g, ' ')}\n`;
  });
  const canonical = [req.method, uri, query, headerLines.join(''), signedHeaders, payload].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day as string), region as string), service as string), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  return expected === signature ? null : 'signature mismatch';
}

/** Order of keys as S3 lists them: by their UTF-8 bytes. */
function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function unquote(etag: string): string {
  return etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The whole body of a request, or null when the client went away before sending all of it (a
 * killed FUSE daemon mid-upload): S3 then changes nothing, while s3rver would keep a partial object.
 */
function receiveWhole(req: IncomingMessage, body: Readable): Promise<Buffer | null> {
  return new Promise((resolve) => {
    if (req.destroyed && !req.complete) return resolve(null);
    const chunks: Buffer[] = [];
    body.on('data', (chunk: Buffer) => chunks.push(chunk));
    body.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('close', () => {
      if (!req.complete) resolve(null);
    });
  });
}

/** Microseconds of the monotonic clock (process.hrtime: the same in every process), for RecordedRequest's stamps. */
const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * s3rver behind a proxy that behaves as S3 and R2 do where s3rver does not:
 *
 * - PUT (whole object or copy) and CompleteMultipartUpload honour `If-None-Match: *` (412
 *   PreconditionFailed when the key exists) and `If-Match: <etag>` (412 on another ETag, 404
 *   NoSuchKey when absent). Every write of a key (PUT, copy, complete, DELETE) runs under a lock of
 *   that key in the proxy, so a check and its write are atomic: of N concurrent create-only PUTs,
 *   one wins.
 * - UploadPart and UploadPartCopy are served by the proxy (into s3rver's upload folder, so that
 *   s3rver's CompleteMultipartUpload assembles them): copy parts read `x-amz-copy-source` (URL
 *   encoded), `x-amz-copy-source-range` (`bytes=first-last`, inside the object) and
 *   `x-amz-copy-source-if-match`.
 * - CompleteMultipartUpload checks the parts as S3 does (ascending, known, ETags matching, at least
 *   5 MiB but the last) and as R2 does: all parts but the last of the same size (400 InvalidPart
 *   "All non-trailing parts must have the same length.").
 * - A whole-object PUT is received in full before the key's lock is taken and s3rver sees it: one
 *   whose client goes away half-way stores nothing (s3rver would keep the part it got, and the
 *   proxy's lock of the key would wait for the rest forever).
 * - Whole-object copies get their `x-amz-copy-source` re-encoded so that s3rver (which only
 *   `decodeURI`s it) finds keys with `+`, `&`, `?`, `#` and the like.
 * - ListMultipartUploads (prefix, delimiter, key and upload-id markers, max-uploads), ListParts
 *   (part-number-marker, max-parts) and AbortMultipartUpload (204; 404 NoSuchUpload) are answered
 *   by the proxy from s3rver's upload folders, which s3rver itself never lists or removes (its
 *   abort was a 405 that the client's clean-up ignored). `multipartUploads()` reads them without a
 *   request and `backdateUpload()` moves an upload's times back (an upload left hours ago).
 * - `latencyMs` (benchmarks): every request waits that long before it is handled, as one round
 *   trip to a remote store would make it wait; a timer, no CPU of the server's.
 */
export async function startStrictS3Server(buckets: string[] = [], options: { verifySignatures?: boolean; latencyMs?: number } = {}): Promise<StrictS3TestServer> {
  const { api: upstream, store } = await launchS3rver(buckets);
  const verify = options.verifySignatures ?? true;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const locks = new Map<string, Promise<void>>();
  const parts = new Map<string, Map<number, { size: number; etag: string }>>();
  const failures: (InjectedFailure & { left: number })[] = [];
  let seen: RecordedRequest[] = [];
  let stats: TrafficStats = { requests: {}, bytesIn: {}, totalBytesIn: 0, injected: 0 };
  let badSignatures = 0;

  const withLock = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const previous = locks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const chained = previous.then(() => current);
    locks.set(name, chained);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (locks.get(name) === chained) locks.delete(name);
    }
  };

  const currentEtag = async (bucket: string, key: string): Promise<string | null> => {
    try {
      return unquote(String((await store.getMetadata(bucket, key)).etag));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };

  /** null when the conditions hold, else the answer to send. */
  const checkConditions = async (headers: IncomingHttpHeaders, bucket: string, key: string): Promise<[number, string] | null> => {
    const ifNoneMatch = headers['if-none-match'];
    const ifMatch = headers['if-match'];
    if (ifNoneMatch === undefined && ifMatch === undefined) return null;
    const etag = await currentEtag(bucket, key);
    if (ifNoneMatch !== undefined) {
      if (ifNoneMatch.trim() !== '*') return [501, s3ErrorXml('NotImplemented', 'If-None-Match only accepts *', { Key: key })];
      if (etag !== null) return [412, s3ErrorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-None-Match', Key: key })];
    }
    if (ifMatch !== undefined) {
      if (etag === null) return [404, s3ErrorXml('NoSuchKey', 'The specified key does not exist.', { Key: key })];
      const wanted = ifMatch.split(',').map(unquote);
      if (!wanted.includes('*') && !wanted.includes(etag)) {
        return [412, s3ErrorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match', Key: key })];
      }
    }
    return null;
  };

  /**
   * Send the request on to s3rver and its answer back. Resolves once s3rver's answer has been read
   * whole (a write of the key is then done there, which is what the key's lock waits for), whether
   * or not the client is still there to get it: a client that went away (a killed FUSE daemon)
   * must not leave the lock held for ever.
   */
  const forward = (req: IncomingMessage, body: Readable | Buffer, res: ServerResponse, headers: IncomingHttpHeaders = req.headers): Promise<number> =>
    new Promise((resolve) => {
      const outgoing = httpRequest({ host: '127.0.0.1', port: upstream.port, method: req.method, path: req.url, headers, agent }, (answer) => {
        const status = answer.statusCode ?? 502;
        answer.once('close', () => resolve(status));
        if (res.destroyed) return void answer.resume();
        // Gone half-way: the rest is dropped (a resume alone could be undone by pipe's own cleanup,
        // leaving the answer paused, never closed, and the key's lock held).
        res.once('close', () => {
          if (!answer.complete) answer.destroy();
        });
        res.writeHead(status, answer.headers);
        answer.pipe(res);
      });
      outgoing.on('error', () => {
        if (!res.headersSent) sendXml(res, 502, s3ErrorXml('InternalError', 'the test server behind the proxy failed'));
        else res.destroy();
        resolve(502);
      });
      if (Buffer.isBuffer(body)) outgoing.end(body);
      else {
        // A streamed body whose client went away half-way: s3rver would wait for the rest.
        req.once('close', () => {
          if (!req.complete) outgoing.destroy();
        });
        body.pipe(outgoing);
      }
    });

  const uploadPart = async (req: IncomingMessage, body: Readable, res: ServerResponse, bucket: string, query: URLSearchParams): Promise<void> => {
    const uploadId = query.get('uploadId') ?? '';
    const partNumber = Number(query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
      await drain(body);
      return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive'));
    }
    const uploadDir = join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId);
    if (!/^[0-9a-f]+$/.test(uploadId) || !(await stat(join(uploadDir, 'key')).then(() => true, () => false))) {
      await drain(body);
      return sendXml(res, 404, s3ErrorXml('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId }));
    }
    let source: Readable = body;
    let copy = false;
    const copySource = req.headers['x-amz-copy-source'];
    if (typeof copySource === 'string') {
      copy = true;
      await drain(body);
      let decoded: string;
      try {
        decoded = decodeURIComponent(copySource.split('?')[0] as string).replace(/^\//, '');
      } catch {
        return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'Invalid copy source encoding'));
      }
      const slash = decoded.indexOf('/');
      const srcBucket = decoded.slice(0, slash);
      const srcKey = decoded.slice(slash + 1);
      let metadata: Record<string, string | number>;
      try {
        metadata = await store.getMetadata(srcBucket, srcKey);
      } catch {
        return sendXml(res, 404, s3ErrorXml('NoSuchKey', 'The specified key does not exist.', { Key: srcKey }));
      }
      const ifMatch = req.headers['x-amz-copy-source-if-match'];
      if (typeof ifMatch === 'string' && unquote(ifMatch) !== unquote(String(metadata.etag))) {
        return sendXml(res, 412, s3ErrorXml('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'x-amz-copy-source-If-Match' }));
      }
      const size = Number(metadata['content-length']);
      let first = 0;
      let last = size - 1;
      const range = req.headers['x-amz-copy-source-range'];
      if (typeof range === 'string') {
        const m = /^bytes=(\d+)-(\d+)$/.exec(range);
        if (!m) return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy'));
        first = Number(m[1]);
        last = Number(m[2]);
        if (first > last || last >= size) return sendXml(res, 400, s3ErrorXml('InvalidArgument', `Range specified is not valid for source object of size: ${size}`));
      }
      source = size === 0 ? new PassThrough().end() : createReadStream(store.getResourcePath(srcBucket, srcKey, 'object'), { start: first, end: last });
    }
    await mkdir(uploadDir, { recursive: true });
    const partPath = join(uploadDir, String(partNumber));
    const md5 = createHash('md5');
    let size = 0;
    await pipeline(
      source,
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      createWriteStream(partPath),
    );
    const digest = md5.digest('hex');
    await writeFile(`${partPath}.md5`, digest);
    let known = parts.get(uploadId);
    if (!known) parts.set(uploadId, (known = new Map()));
    known.set(partNumber, { size, etag: digest });
    if (copy) {
      sendXml(res, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>&quot;${digest}&quot;</ETag></CopyPartResult>`);
    } else {
      res.writeHead(200, { etag: `"${digest}"`, 'content-length': '0' });
      res.end();
    }
  };

  const complete = async (req: IncomingMessage, body: Readable, res: ServerResponse, bucket: string, key: string, query: URLSearchParams): Promise<void> => {
    const xml = (await drain(body)).toString('utf8');
    const uploadId = query.get('uploadId') ?? '';
    const known = parts.get(uploadId) ?? new Map<number, { size: number; etag: string }>();
    const listed = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
      number: Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1] as string)?.[1]),
      etag: unquote((/<ETag>([\s\S]*?)<\/ETag>/.exec(m[1] as string)?.[1] ?? '').replace(/&quot;/g, '"')),
    }));
    if (listed.length === 0) return sendXml(res, 400, s3ErrorXml('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.'));
    for (let i = 0; i < listed.length; i++) {
      const part = listed[i] as { number: number; etag: string };
      if (i > 0 && part.number <= (listed[i - 1] as { number: number }).number) {
        return sendXml(res, 400, s3ErrorXml('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.'));
      }
      const stored = known.get(part.number);
      if (!stored || stored.etag !== part.etag) {
        return sendXml(res, 400, s3ErrorXml('InvalidPart', 'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part\'s entity tag.', { PartNumber: String(part.number) }));
      }
    }
    const sizes = listed.map((part) => (known.get(part.number) as { size: number }).size);
    for (let i = 0; i < sizes.length - 1; i++) {
      if ((sizes[i] as number) < STRICT_MIN_PART_SIZE) {
        return sendXml(res, 400, s3ErrorXml('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', { PartNumber: String(listed[i]?.number) }));
      }
      if (sizes[i] !== sizes[0]) return sendXml(res, 400, s3ErrorXml('InvalidPart', 'All non-trailing parts must have the same length.'));
    }
    await withLock(`${bucket}\0${key}`, async () => {
      const refused = await checkConditions(req.headers, bucket, key);
      if (refused) return sendXml(res, refused[0], refused[1]);
      const status = await forward(req, Buffer.from(xml, 'utf8'), res);
      if (status === 200) parts.delete(uploadId);
    });
  };

  // --- incomplete multipart uploads (s3rver keeps them, but answers none of the calls that list or abort them) ---

  /** The folder of a bucket's incomplete uploads: s3rver's, one folder per upload id holding `key`, `metadata` and the parts. */
  const uploadsDir = (bucket: string): string => store.getResourcePath(bucket, undefined, 'uploads');

  /**
   * An incomplete upload, or null (no such id, or one being initiated, completed or aborted). Its
   * initiation time is the time of its `key` file; a part is listed once its `.md5` is written
   * (after its bytes), with the time of its file.
   */
  const readUpload = async (bucket: string, uploadId: string): Promise<StoredUpload | null> => {
    if (!/^[0-9a-f]+$/.test(uploadId)) return null;
    const dir = join(uploadsDir(bucket), uploadId);
    const missing = (error: unknown): null => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    };
    const found = await Promise.all([readFile(join(dir, 'key'), 'utf8'), stat(join(dir, 'key')), readdir(dir)]).catch(missing);
    if (!found || !found[0]) return null;
    const [key, info, names] = found;
    const parts = await Promise.all(
      names
        .filter((name) => /^\d+$/.test(name))
        .map(async (name) => {
          const read = await Promise.all([stat(join(dir, name)), readFile(join(dir, `${name}.md5`), 'utf8')]).catch(missing);
          return read && { partNumber: Number(name), size: read[0].size, etag: read[1].trim(), lastModified: read[0].mtime };
        }),
    );
    return { key, uploadId, initiated: info.mtime, parts: parts.filter((part) => part !== null).sort((a, b) => a.partNumber - b.partNumber) };
  };

  /** A bucket's incomplete uploads, by key (UTF-8 bytes, as S3 orders keys) then upload id. */
  const readUploads = async (bucket: string): Promise<StoredUpload[]> => {
    const ids = await readdir(uploadsDir(bucket)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    const uploads = (await Promise.all(ids.map((id) => readUpload(bucket, id)))).filter((upload) => upload !== null);
    return uploads.sort((a, b) => utf8Compare(a.key, b.key) || utf8Compare(a.uploadId, b.uploadId));
  };

  const owner = '<ID>s3rver-owner</ID><DisplayName>s3rver</DisplayName>';

  /**
   * ListMultipartUploads (GET /bucket?uploads), as S3 documents it: `prefix`, `delimiter` (keys
   * rolled up into CommonPrefixes, each counting as one entry), `max-uploads` (default and at most
   * 1,000), `key-marker` (uploads of later keys) with `upload-id-marker` (and of that key, later
   * upload ids), `NextKeyMarker` / `NextUploadIdMarker` on a truncated page. Uploads of one key
   * are ordered by upload id (S3: by initiation time), which is what the upload-id-marker rule uses.
   */
  const listUploads = async (res: ServerResponse, bucket: string, query: URLSearchParams): Promise<void> => {
    if (!(await store.getBucket(bucket))) return sendXml(res, 404, s3ErrorXml('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket }));
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const uploadIdMarker = keyMarker ? (query.get('upload-id-marker') ?? '') : '';
    const maxText = query.get('max-uploads');
    if (maxText !== null && !/^\d+$/.test(maxText)) return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'Argument max-uploads must be an integer between 0 and 2147483647', { ArgumentName: 'max-uploads', ArgumentValue: maxText }));
    const maxUploads = Math.min(1000, maxText === null ? 1000 : Number(maxText));
    const entries: ({ upload: StoredUpload } | { common: string })[] = [];
    const rolledUp = new Set<string>();
    for (const upload of await readUploads(bucket)) {
      if (!upload.key.startsWith(prefix)) continue;
      const at = delimiter ? upload.key.indexOf(delimiter, prefix.length) : -1;
      if (at !== -1) {
        const common = upload.key.slice(0, at + delimiter.length);
        if (rolledUp.has(common)) continue;
        rolledUp.add(common);
        if (!keyMarker || utf8Compare(common, keyMarker) > 0) entries.push({ common });
      } else if (!keyMarker || utf8Compare(upload.key, keyMarker) > 0 || (uploadIdMarker && upload.key === keyMarker && utf8Compare(upload.uploadId, uploadIdMarker) > 0)) {
        entries.push({ upload });
      }
    }
    const page = entries.slice(0, maxUploads);
    const truncated = entries.length > page.length;
    const last = page.at(-1);
    const next = !truncated || !last ? '' : 'upload' in last
      ? `<NextKeyMarker>${xmlText(last.upload.key)}</NextKeyMarker><NextUploadIdMarker>${xmlText(last.upload.uploadId)}</NextUploadIdMarker>`
      : `<NextKeyMarker>${xmlText(last.common)}</NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>`;
    const uploads = page.flatMap((entry) => ('upload' in entry ? [entry.upload] : []));
    const commons = page.flatMap((entry) => ('common' in entry ? [entry.common] : []));
    sendXml(
      res,
      200,
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlText(bucket)}</Bucket>` +
        `<KeyMarker>${xmlText(keyMarker)}</KeyMarker><UploadIdMarker>${xmlText(uploadIdMarker)}</UploadIdMarker>${next}<Prefix>${xmlText(prefix)}</Prefix>` +
        `${delimiter ? `<Delimiter>${xmlText(delimiter)}</Delimiter>` : ''}<MaxUploads>${maxUploads}</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
        uploads
          .map((u) => `<Upload><Key>${xmlText(u.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiator>${owner}</Initiator><Owner>${owner}</Owner><StorageClass>STANDARD</StorageClass><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`)
          .join('') +
        commons.map((common) => `<CommonPrefixes><Prefix>${xmlText(common)}</Prefix></CommonPrefixes>`).join('') +
        '</ListMultipartUploadsResult>',
    );
  };

  /** ListParts (GET /bucket/key?uploadId=): the parts in order, `max-parts` (default and at most 1,000) from after `part-number-marker`; 404 NoSuchUpload for an upload that is not there (or of another key). */
  const listParts = async (res: ServerResponse, bucket: string, key: string, query: URLSearchParams): Promise<void> => {
    const uploadId = query.get('uploadId') ?? '';
    const upload = await readUpload(bucket, uploadId);
    if (!upload || upload.key !== key) return sendXml(res, 404, s3ErrorXml('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId }));
    const markerText = query.get('part-number-marker') ?? '0';
    const maxText = query.get('max-parts') ?? '1000';
    if (!/^\d+$/.test(markerText) || !/^\d+$/.test(maxText)) return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'part-number-marker and max-parts must be integers'));
    const after = upload.parts.filter((part) => part.partNumber > Number(markerText));
    const page = after.slice(0, Math.min(1000, Number(maxText)));
    const truncated = after.length > page.length;
    sendXml(
      res,
      200,
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlText(bucket)}</Bucket><Key>${xmlText(key)}</Key><UploadId>${uploadId}</UploadId>` +
        `<Initiator>${owner}</Initiator><Owner>${owner}</Owner><StorageClass>STANDARD</StorageClass><PartNumberMarker>${Number(markerText)}</PartNumberMarker>` +
        `<NextPartNumberMarker>${page.at(-1)?.partNumber ?? 0}</NextPartNumberMarker><MaxParts>${Math.min(1000, Number(maxText))}</MaxParts><IsTruncated>${truncated}</IsTruncated>` +
        page.map((part) => `<Part><PartNumber>${part.partNumber}</PartNumber><LastModified>${part.lastModified.toISOString()}</LastModified><ETag>&quot;${part.etag}&quot;</ETag><Size>${part.size}</Size></Part>`).join('') +
        '</ListPartsResult>',
    );
  };

  /** AbortMultipartUpload (DELETE /bucket/key?uploadId=): the upload and its parts go, 204; 404 NoSuchUpload when it is not there (or of another key). */
  const abortUpload = async (res: ServerResponse, bucket: string, key: string, query: URLSearchParams): Promise<void> => {
    const uploadId = query.get('uploadId') ?? '';
    const upload = await readUpload(bucket, uploadId);
    if (!upload || upload.key !== key) return sendXml(res, 404, s3ErrorXml('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId }));
    await rm(join(uploadsDir(bucket), uploadId), { recursive: true, force: true });
    parts.delete(uploadId);
    res.writeHead(204);
    res.end();
  };

  /**
   * ListObjectsV2 answered by the proxy: s3rver's continuation tokens use DES, which Node 20's
   * OpenSSL 3 no longer offers (every truncated page was a 500). The token here is the last key or
   * common prefix returned, base64url-encoded; the listing itself is s3rver's (delimiters fixed).
   */
  const listV2 = async (res: ServerResponse, bucket: string, query: URLSearchParams): Promise<void> => {
    if (!(await store.getBucket(bucket))) return sendXml(res, 404, s3ErrorXml('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket }));
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.min(1000, Number(query.get('max-keys') ?? 1000));
    const token = query.get('continuation-token');
    let startAfter = query.get('start-after') ?? '';
    if (token) {
      if (!token.startsWith('p1.')) return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' }));
      startAfter = Buffer.from(token.slice(3), 'base64url').toString('utf8');
    }
    const listed = maxKeys === 0 ? { objects: [], commonPrefixes: [], isTruncated: false } : await store.listObjects(bucket, { prefix, startAfter, maxKeys, ...(delimiter ? { delimiter } : {}) });
    const prefixes = (listed.commonPrefixes ?? []).filter((p) => p > startAfter);
    const lastKey = listed.objects.at(-1)?.key ?? '';
    const lastPrefix = prefixes.at(-1) ?? '';
    const last = lastKey > lastPrefix ? lastKey : lastPrefix;
    const truncated = Boolean(listed.isTruncated) && last !== '';
    const contents = listed.objects
      .map((o) => `<Contents><Key>${xmlText(o.key)}</Key><LastModified>${new Date(String(o.metadata?.['last-modified'])).toISOString()}</LastModified><ETag>${xmlText(String(o.metadata?.etag ?? ''))}</ETag><Size>${Number(o.metadata?.['content-length'] ?? 0)}</Size><StorageClass>STANDARD</StorageClass></Contents>`)
      .join('');
    const common = prefixes.map((p) => `<CommonPrefixes><Prefix>${xmlText(p)}</Prefix></CommonPrefixes>`).join('');
    const xml =
      `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${xmlText(bucket)}</Name><Prefix>${xmlText(prefix)}</Prefix>` +
      (token ? `<ContinuationToken>${xmlText(token)}</ContinuationToken>` : startAfter ? `<StartAfter>${xmlText(startAfter)}</StartAfter>` : '') +
      `<KeyCount>${listed.objects.length + prefixes.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>${delimiter ? `<Delimiter>${xmlText(delimiter)}</Delimiter>` : ''}` +
      `<IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>p1.${Buffer.from(last, 'utf8').toString('base64url')}</NextContinuationToken>` : ''}${contents}${common}</ListBucketResult>`;
    sendXml(res, 200, xml);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? '';
    const url = req.url ?? '/';
    const recorded: RecordedRequest = { method, url, receivedUs: monotonicUs() };
    seen.push(recorded);
    res.once('finish', () => (recorded.answeredUs = monotonicUs()));
    stats.requests[method] = (stats.requests[method] ?? 0) + 1;
    const body = req.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          stats.bytesIn[method] = (stats.bytesIn[method] ?? 0) + chunk.length;
          stats.totalBytesIn += chunk.length;
          callback(null, chunk);
        },
      }),
    );
    const failure = failures.find((f) => f.left > 0 && (!f.method || f.method === method) && (!f.match || f.match(url, method)));
    if (failure) {
      failure.left--;
      stats.injected++;
      await drain(body);
      if (failure.kind === 'reset') {
        req.socket.destroy();
        return;
      }
      const status = failure.status ?? 503;
      const code = failure.code ?? (status === 503 ? 'SlowDown' : 'InternalError');
      return sendXml(res, status, s3ErrorXml(code, 'injected by the test proxy'));
    }
    const at = url.indexOf('?');
    const rawPath = at === -1 ? url : url.slice(0, at);
    const rawQuery = at === -1 ? '' : url.slice(at + 1);
    if (verify) {
      const problem = checkSignature(req, rawPath, rawQuery);
      if (problem) {
        badSignatures++;
        await drain(body);
        return sendXml(res, 403, s3ErrorXml('SignatureDoesNotMatch', `The request signature we calculated does not match the signature you provided (${problem}).`));
      }
    }
    const query = new URLSearchParams(rawQuery);
    const segments = rawPath.split('/');
    let bucket = '';
    let key = '';
    try {
      bucket = decodeURIComponent(segments[1] ?? '');
      key = decodeURIComponent(segments.slice(2).join('/'));
    } catch {
      await drain(body);
      return sendXml(res, 400, s3ErrorXml('InvalidURI', "Couldn't parse the specified URI."));
    }
    if (!key && bucket && method === 'GET' && query.has('uploads')) {
      await drain(body);
      return listUploads(res, bucket, query);
    }
    if (!key && bucket && method === 'GET' && query.get('list-type') === '2') {
      await drain(body);
      return listV2(res, bucket, query);
    }
    if (key && method === 'PUT' && query.has('uploadId')) return uploadPart(req, body, res, bucket, query);
    if (key && method === 'POST' && query.has('uploadId')) return complete(req, body, res, bucket, key, query);
    if (key && (method === 'GET' || method === 'DELETE') && query.has('uploadId')) {
      await drain(body);
      return method === 'GET' ? listParts(res, bucket, key, query) : abortUpload(res, bucket, key, query);
    }
    if (key && (method === 'PUT' || method === 'DELETE') && ![...query.keys()].some((name) => name !== 'x-id')) {
      // Received in full before the key's lock is taken: a client gone half-way stores nothing
      // and holds no lock.
      const whole = await receiveWhole(req, body);
      if (whole === null) return;
      await withLock(`${bucket}\0${key}`, async () => {
        const refused = await checkConditions(req.headers, bucket, key);
        if (refused) return sendXml(res, refused[0], refused[1]);
        let headers = req.headers;
        const copySource = req.headers['x-amz-copy-source'];
        if (method === 'PUT' && typeof copySource === 'string') {
          let decoded: string;
          try {
            decoded = decodeURIComponent(copySource.split('?')[0] as string);
          } catch {
            return sendXml(res, 400, s3ErrorXml('InvalidArgument', 'Invalid copy source encoding'));
          }
          headers = { ...req.headers, 'x-amz-copy-source': encodeURI(decoded) };
        }
        await forward(req, whole, res, headers);
      });
      return;
    }
    if (key && (method === 'GET' || method === 'HEAD') && query.size === 0) {
      // s3rver rewrites an object's file in place and answers a read with the size it stat'ed
      // first: a read during a write of the key could send fewer bytes than it announced (the
      // client then waited for its timeout), or another version's ETag. S3 serves one version
      // whole: here a read waits for the key's write, and a write for its reads.
      await withLock(`${bucket}\0${key}`, () => forward(req, body, res));
      return;
    }
    await forward(req, body, res);
  };

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendXml(res, 500, s3ErrorXml('InternalError', `test proxy: ${String(error)}`));
      else res.destroy();
    });
  };
  const latencyMs = options.latencyMs ?? 0;
  const proxy: Server = createServer(latencyMs > 0 ? (req, res) => void setTimeout(serve, latencyMs, req, res) : serve);
  await new Promise<void>((resolve, reject) => {
    proxy.once('error', reject);
    proxy.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (proxy.address() as AddressInfo).port;
  return {
    ...upstream,
    endpoint: `http://127.0.0.1:${port}`,
    port,
    upstreamEndpoint: upstream.endpoint,
    writeCount: () => seen.filter((r) => WRITE_METHODS.has(r.method)).length,
    requests: () => [...seen],
    resetCounts() {
      seen = [];
      stats = { requests: {}, bytesIn: {}, totalBytesIn: 0, injected: 0 };
    },
    stats: () => ({ requests: { ...stats.requests }, bytesIn: { ...stats.bytesIn }, totalBytesIn: stats.totalBytesIn, injected: stats.injected }),
    injectFailures(failure) {
      failures.push({ ...failure, left: failure.count ?? 1 });
    },
    signatureFailures: () => badSignatures,
    multipartUploads: readUploads,
    async backdateUpload(bucket, uploadId, when) {
      const upload = await readUpload(bucket, uploadId);
      if (!upload) throw new Error(`no incomplete upload ${uploadId} in ${bucket}`);
      const dir = join(uploadsDir(bucket), uploadId);
      for (const name of ['key', ...upload.parts.flatMap((part) => [String(part.partNumber), `${part.partNumber}.md5`])]) await utimes(join(dir, name), when, when);
    },
    async stop() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      agent.destroy();
      await upstream.stop();
    },
  };
}
