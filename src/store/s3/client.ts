// A small S3 client over an HTTP/1.1 transport of its own (http1.ts) with hand-written SigV4 (see
// docs/s3-client.md for why).
// Load it lazily (`await import(...)`) from commands that reach the store: nothing at start-up.
//
// Secrets: the secret access key lives in a private field, is used only to derive signing keys,
// and is scrubbed from every error message; no error carries request headers.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { mapLimit } from '../limit.js';
import { BufferSink, Http1Origin, NetworkError, type AnswerHead, type BodySink } from './http1.js';
import { EMPTY_SHA256, sha256Hex, signRequest, UNSIGNED_PAYLOAD, uriEncode } from './sigv4.js';

export type S3Provider = 'r2' | 'aws' | 'other';

export interface S3ClientConfig {
  /** `https://ACCOUNT.r2.cloudflarestorage.com`, `http://127.0.0.1:4568`; default for aws: `https://s3.<region>.amazonaws.com`. */
  endpoint?: string;
  /** `auto` for R2. */
  region: string;
  bucket: string;
  /** `https://endpoint/bucket/key` (true) or `https://bucket.endpoint/key` (false). */
  pathStyle: boolean;
  accessKeyId: string;
  /** Never logged, never in an error message. */
  secretAccessKey: string;
  provider: S3Provider;
  /** A PEM file of CAs to trust instead of Node's bundled roots; default `AWS_CA_BUNDLE` from the environment. */
  caBundle?: string;
  /** Idle time allowed on a request's socket (no byte sent or received), default 30 s. */
  timeoutMs?: number;
  /** Attempts per request, first one included (default 5). */
  maxAttempts?: number;
  /** Sockets kept per host (default 64). */
  maxSockets?: number;
  /** First retry delay (default 100 ms); doubles each attempt, capped at 5 s, with jitter. */
  retryBaseMs?: number;
}

/** S3 minimum size of a multipart part (all but the last). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export interface S3ErrorDetails {
  operation: string;
  key?: string;
  status?: number;
  code?: string;
  requestId?: string;
  attempts: number;
  /** A previous attempt of this write failed without an answer: it may have been applied. */
  ambiguous?: boolean;
}

/** A failed S3 operation: names the operation, the key and the server's code and message. */
export class S3Error extends Error {
  readonly operation: string;
  readonly key?: string;
  readonly status?: number;
  readonly code?: string;
  readonly requestId?: string;
  readonly attempts: number;
  readonly ambiguous: boolean;
  constructor(message: string, details: S3ErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'S3Error';
    this.operation = details.operation;
    if (details.key !== undefined) this.key = details.key;
    if (details.status !== undefined) this.status = details.status;
    if (details.code !== undefined) this.code = details.code;
    if (details.requestId !== undefined) this.requestId = details.requestId;
    this.attempts = details.attempts;
    this.ambiguous = details.ambiguous ?? false;
  }
}

/**
 * A conditional write lost: `If-None-Match: *` on an existing key, `If-Match` on another ETag or on
 * a missing key (412, or 404 for If-Match), or a concurrent conditional write (409
 * ConditionalRequestConflict). When `ambiguous`, an earlier attempt got no answer and may itself
 * have written: read the object back before concluding someone else won.
 */
export class PreconditionFailed extends S3Error {
  constructor(message: string, details: S3ErrorDetails) {
    super(message, details);
    this.name = 'PreconditionFailed';
  }
}

export class NoSuchKey extends S3Error {
  constructor(message: string, details: S3ErrorDetails) {
    super(message, details);
    this.name = 'NoSuchKey';
  }
}

export interface S3ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

export interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  /** When the upload was initiated, as the server says (ISO 8601). */
  initiated: string;
}

export interface PartInfo {
  partNumber: number;
  size: number;
  etag: string;
  lastModified: string;
}

export interface ListPage {
  objects: S3ObjectInfo[];
  /** Common prefixes (with a delimiter). */
  prefixes: string[];
}

export interface HeadResult {
  size: number;
  etag: string;
  lastModified: string;
  /** `x-amz-meta-*` headers, without the prefix. */
  metadata: Record<string, string>;
  contentType?: string;
}

export interface ByteRange {
  start: number;
  /** Inclusive; omitted: to the end. */
  end?: number;
}

export interface PutOptions {
  ifNoneMatch?: '*';
  ifMatch?: string;
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface MultipartOptions {
  partSize?: number;
  /** Parts in flight at once (default 4). */
  concurrency?: number;
  contentType?: string;
  metadata?: Record<string, string>;
}

export interface AppendOptions extends MultipartOptions {
  /** ETag the existing object must still have (`x-amz-copy-source-if-match`); else PreconditionFailed. */
  sourceEtag?: string;
}

export interface AppendResult {
  etag: string;
  /** Bytes copied server-side. */
  copiedBytes: number;
  /** Bytes sent over the wire. */
  uploadedBytes: number;
}

type Body = { kind: 'buffer'; data: Buffer } | { kind: 'file'; path: string; start: number; end: number };

interface RequestSpec {
  operation: string;
  /** Key named in errors (also the object addressed when `object` is true). */
  key?: string;
  /** Address the key (true) or the bucket (false). */
  object: boolean;
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  query?: [string, string][];
  headers?: Record<string, string>;
  body?: Body;
  /** Stream a 2xx body into this file instead of buffering it (created with `fileMode`). */
  toFile?: string;
  /** Stream a 2xx body into its sha256 only: nothing kept. */
  hashOnly?: boolean;
  fileMode?: number;
  /** With `toFile`: a body of at most this many bytes (by its Content-Length) is buffered instead. */
  bufferUpTo?: number;
  /** Statuses that are not errors (default: 2xx). */
  accept?: (status: number) => boolean;
  /** The operation may answer 200 with an <Error> body (CompleteMultipartUpload, copies). */
  errorIn200?: boolean;
  /** A conditional write: 412/409 (and 404 for If-Match) become PreconditionFailed. */
  conditional?: 'ifNoneMatch' | 'ifMatch';
  /** A 2xx answer must be an XML document with this root element, else S3_BAD_ANSWER (not S3: a web server, a portal). */
  xmlRoot?: string;
  /** A 2xx answer must carry an ETag header, else S3_BAD_ANSWER. */
  etagHeader?: boolean;
}

interface RawResponse {
  status: number;
  headers: AnswerHead['headers'];
  body: Buffer;
  /** Bytes written to `toFile`. */
  written: number;
  /** sha256 hex of the bytes written to `toFile` (hashed as they streamed). */
  sha256?: string;
}

const RETRYABLE_STATUS = new Set([500, 502, 503, 504, 429]);
const RETRYABLE_CODES = new Set(['SlowDown', 'InternalError', 'ServiceUnavailable', 'RequestTimeout', 'Throttling', 'ThrottlingException', 'RequestTimeTooSkewed']);
const RETRYABLE_NETWORK = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'S3_TRUNCATED', 'S3_BAD_ANSWER',
]);
const MAX_ERROR_BODY = 64 * 1024;

// --- minimal XML --------------------------------------------------------------------------------

const ENTITY = /&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g;
const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function xmlDecode(text: string): string {
  return text.replace(ENTITY, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return NAMED[entity] ?? '';
  });
}

export function xmlEscape(text: string): string {
  return text.replace(/[&<>"'\r\n\t]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '"': return '&quot;';
      case "'": return '&apos;';
      default: return `&#${c.charCodeAt(0)};`;
    }
  });
}

function tag(xml: string, name: string): string | undefined {
  const match = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return match ? xmlDecode(match[1] as string) : undefined;
}

function blocks(xml: string, name: string): string[] {
  const found: string[] = [];
  const pattern = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, 'g');
  for (let match = pattern.exec(xml); match; match = pattern.exec(xml)) found.push(match[1] as string);
  return found;
}

export interface ParsedListPage extends ListPage {
  isTruncated: boolean;
  nextContinuationToken?: string;
}

/** Parses a ListObjectsV2 answer; keys are url-decoded when the answer says `EncodingType` url. */
export function parseListObjectsV2(xml: string): ParsedListPage {
  const urlEncoded = tag(xml, 'EncodingType') === 'url';
  const decodeKey = (raw: string): string => (urlEncoded ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw);
  const objects = blocks(xml, 'Contents').map((block) => ({
    key: decodeKey(tag(block, 'Key') ?? ''),
    size: Number(tag(block, 'Size') ?? 0),
    etag: tag(block, 'ETag') ?? '',
    lastModified: tag(block, 'LastModified') ?? '',
  }));
  const prefixes = blocks(xml, 'CommonPrefixes').map((block) => decodeKey(tag(block, 'Prefix') ?? ''));
  const page: ParsedListPage = { objects, prefixes, isTruncated: tag(xml, 'IsTruncated') === 'true' };
  const token = tag(xml, 'NextContinuationToken');
  if (token) page.nextContinuationToken = token;
  return page;
}

function errorFields(xml: string): { code?: string; message?: string; requestId?: string } {
  const root = /<Error>([\s\S]*?)<\/Error>/.exec(xml);
  if (!root) return {};
  const out: { code?: string; message?: string; requestId?: string } = {};
  const code = tag(root[1] as string, 'Code');
  const message = tag(root[1] as string, 'Message');
  const requestId = tag(root[1] as string, 'RequestId');
  if (code) out.code = code;
  if (message) out.message = message;
  if (requestId) out.requestId = requestId;
  return out;
}

function isRootError(xml: string): boolean {
  return /^\s*(<\?xml[^>]*\?>\s*)?<Error>/.test(xml);
}

/**
 * The local name of an XML document's root element (`ListBucketResult`), or '' when the text does
 * not start as an XML document does (an HTML page, JSON, nothing). Skips a byte-order mark,
 * white space, the XML declaration, comments and a doctype; a namespace prefix is dropped.
 */
export function xmlRootName(text: string): string {
  let at = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (at < text.length && /\s/.test(text[at] as string)) at++;
    const close = text.startsWith('<?', at) ? '?>' : text.startsWith('<!--', at) ? '-->' : /^<!DOCTYPE/i.test(text.slice(at, at + 9)) ? '>' : null;
    if (close === null) break;
    const end = text.indexOf(close, at + 2);
    if (end === -1) return '';
    at = end + close.length;
  }
  const match = /^<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]/.exec(text.slice(at, at + 256));
  return match ? (match[1] as string) : '';
}

/** The start of an answer's body as one line of printable text, for an error message. */
function bodySample(body: Buffer): string {
  const text = body
    .subarray(0, 400)
    .toString('utf8')
    .replace(/\s+/g, ' ')
    .replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?')
    // A server that echoes the request (headers included) must not put its signature in a message.
    .replace(/(Signature|Credential|X-Amz-Signature|X-Amz-Credential)=[^\s,&"<]*/gi, '$1=[redacted]')
    .trim();
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

// --- the client ---------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class S3Client {
  readonly bucket: string;
  readonly region: string;
  readonly provider: S3Provider;
  readonly pathStyle: boolean;
  readonly accessKeyId: string;
  readonly #secret: string;
  readonly #origin: Http1Origin;
  readonly #host: string;
  readonly #basePath: string;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  /** The endpoint as configured, without any user:password part: for messages. */
  readonly #endpointLabel: string;

  constructor(config: S3ClientConfig) {
    if (!config.bucket) throw new Error('S3 client: a bucket is required');
    if (!config.accessKeyId || !config.secretAccessKey) throw new Error('S3 client: an access key id and a secret access key are required');
    const endpointText = config.endpoint ?? (config.provider === 'aws' ? `https://s3.${config.region}.amazonaws.com` : undefined);
    if (!endpointText) throw new Error(`S3 client: an endpoint is required for provider ${config.provider}`);
    let endpoint: URL;
    try {
      endpoint = new URL(endpointText);
    } catch {
      throw new Error('S3 client: the endpoint is not a URL');
    }
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') throw new Error(`S3 client: unsupported endpoint protocol ${endpoint.protocol}`);
    this.bucket = config.bucket;
    this.region = config.region;
    this.provider = config.provider;
    this.pathStyle = config.pathStyle;
    this.accessKeyId = config.accessKeyId;
    this.#secret = config.secretAccessKey;
    this.#timeoutMs = config.timeoutMs ?? 30_000;
    this.#maxAttempts = Math.max(1, config.maxAttempts ?? 5);
    this.#retryBaseMs = config.retryBaseMs ?? 100;
    const secure = endpoint.protocol === 'https:';
    const authority = config.pathStyle ? endpoint.hostname : `${config.bucket}.${endpoint.hostname}`;
    // The URL parser drops a default port (443 for https, 80 for http): the Host header then has none either.
    this.#host = endpoint.port ? `${authority}:${endpoint.port}` : authority;
    this.#basePath = endpoint.pathname.replace(/\/+$/, '');
    this.#endpointLabel = `${endpoint.protocol}//${endpoint.host}${this.#basePath}`;
    let ca: Buffer | undefined;
    const caFile = secure ? (config.caBundle ?? process.env.AWS_CA_BUNDLE) : undefined;
    if (caFile) {
      try {
        ca = readFileSync(caFile);
      } catch (error) {
        throw new Error(`S3 client: cannot read the CA bundle ${caFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
    }
    this.#origin = new Http1Origin({
      secure, hostname: authority.replace(/^\[(.*)\]$/, '$1'), port: endpoint.port ? Number(endpoint.port) : secure ? 443 : 80,
      maxSockets: config.maxSockets ?? 64, timeoutMs: this.#timeoutMs, ...(ca ? { ca } : {}),
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#origin.close();
  }

  // --- operations ---

  /** ListObjectsV2, one page (up to 1,000 keys) per iteration, following continuation tokens. */
  async *list(prefix = '', options: { delimiter?: string; startAfter?: string; maxKeys?: number } = {}): AsyncGenerator<ListPage> {
    let token: string | undefined;
    do {
      const query: [string, string][] = [['list-type', '2'], ['prefix', prefix]];
      if (options.delimiter) query.push(['delimiter', options.delimiter]);
      if (options.maxKeys) query.push(['max-keys', String(options.maxKeys)]);
      if (token) query.push(['continuation-token', token]);
      else if (options.startAfter) query.push(['start-after', options.startAfter]);
      const response = await this.#send({ operation: 'list', key: prefix, object: false, method: 'GET', query, xmlRoot: 'ListBucketResult' });
      const page = parseListObjectsV2(response.body.toString('utf8'));
      if (page.isTruncated && !page.nextContinuationToken) {
        throw new S3Error(`S3 list of "${prefix}" failed: a truncated page without a continuation token`, { operation: 'list', key: prefix, attempts: 1 });
      }
      token = page.isTruncated ? page.nextContinuationToken : undefined;
      yield { objects: page.objects, prefixes: page.prefixes };
    } while (token);
  }

  /** Every object under a prefix (no delimiter). */
  async listAll(prefix = ''): Promise<S3ObjectInfo[]> {
    const all: S3ObjectInfo[] = [];
    for await (const page of this.list(prefix)) all.push(...page.objects);
    return all;
  }

  /** An object's bytes (or a range of them); NoSuchKey when absent. */
  async get(key: string, options: { range?: ByteRange } = {}): Promise<Buffer> {
    const headers: Record<string, string> = {};
    if (options.range) headers.range = rangeHeader(options.range);
    const response = await this.#send({ operation: 'get', key, object: true, method: 'GET', headers });
    if (options.range && response.status === 200) {
      const { start, end } = options.range;
      return response.body.subarray(start, end === undefined ? undefined : end + 1);
    }
    return response.body;
  }

  /** A whole object and its ETag, in one GET (a HEAD first could name another version than the GET reads). */
  /** An object with its ETag, its `Last-Modified` and the answer's `Date` (the server's clock; '' when absent). */
  async getTagged(key: string): Promise<{ data: Buffer; etag: string; lastModified: string; date: string }> {
    const response = await this.#send({ operation: 'get', key, object: true, method: 'GET' });
    return { data: response.body, etag: headerString(response.headers.etag), lastModified: headerString(response.headers['last-modified']), date: headerString(response.headers.date) };
  }

  /** Streams an object (or a range) into `file` (created or truncated; rewritten on a retry). */
  async getToFile(key: string, file: string, options: { range?: ByteRange } = {}): Promise<{ size: number; etag: string; sha256: string }> {
    const headers: Record<string, string> = {};
    if (options.range) headers.range = rangeHeader(options.range);
    const response = await this.#send({ operation: 'get', key, object: true, method: 'GET', headers, toFile: file });
    return { size: response.written, etag: headerString(response.headers.etag), sha256: response.sha256 ?? EMPTY_SHA256 };
  }

  /** The sha256 of an object's bytes, hashed as they stream in (nothing kept). NoSuchKey when absent. */
  async hashObject(key: string): Promise<{ sha256: string; size: number }> {
    const response = await this.#send({ operation: 'get', key, object: true, method: 'GET', hashOnly: true });
    return { sha256: response.sha256 ?? EMPTY_SHA256, size: response.written };
  }

  /**
   * An object in one GET, whatever its size: in memory (`data`) when it has at most `bufferUpTo`
   * bytes, else streamed into `file` (created with `fileMode`, or truncated; `data` null). The
   * sha256 is of the bytes received. NoSuchKey when absent.
   */
  async getObject(key: string, file: string, options: { bufferUpTo: number; fileMode?: number }): Promise<{ data: Buffer | null; size: number; sha256: string; etag: string }> {
    const spec: RequestSpec = { operation: 'get', key, object: true, method: 'GET', toFile: file, bufferUpTo: options.bufferUpTo };
    if (options.fileMode !== undefined) spec.fileMode = options.fileMode;
    const response = await this.#send(spec);
    const etag = headerString(response.headers.etag);
    if (response.sha256 !== undefined) return { data: null, size: response.written, sha256: response.sha256, etag };
    return { data: response.body, size: response.body.length, sha256: createHash('sha256').update(response.body).digest('hex'), etag };
  }

  /** An object's size, ETag, date and metadata; null when absent. */
  async head(key: string): Promise<HeadResult | null> {
    const response = await this.#send({ operation: 'head', key, object: true, method: 'HEAD', accept: (s) => (s >= 200 && s < 300) || s === 404 });
    if (response.status === 404) return null;
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (name.startsWith('x-amz-meta-') && value !== undefined) metadata[name.slice(11)] = headerString(value);
    }
    const result: HeadResult = {
      size: Number(response.headers['content-length'] ?? 0),
      etag: headerString(response.headers.etag),
      lastModified: headerString(response.headers['last-modified']),
      metadata,
    };
    if (response.headers['content-type']) result.contentType = headerString(response.headers['content-type']);
    return result;
  }

  /**
   * Writes an object whole from a Buffer (signed sha256 and Content-MD5) or a file path (streamed,
   * UNSIGNED-PAYLOAD). `ifNoneMatch: '*'` creates only; `ifMatch` replaces only that ETag.
   */
  async put(key: string, body: Buffer | string, options: PutOptions = {}): Promise<{ etag: string }> {
    const headers = writeHeaders(options);
    if (options.ifNoneMatch) headers['if-none-match'] = options.ifNoneMatch;
    if (options.ifMatch) headers['if-match'] = options.ifMatch;
    let payload: Body;
    if (typeof body === 'string') {
      const info = await stat(body);
      payload = { kind: 'file', path: body, start: 0, end: info.size };
    } else {
      payload = { kind: 'buffer', data: body };
      headers['content-md5'] = createHash('md5').update(body).digest('base64');
    }
    const spec: RequestSpec = { operation: 'put', key, object: true, method: 'PUT', headers, body: payload, etagHeader: true };
    if (options.ifNoneMatch) spec.conditional = 'ifNoneMatch';
    else if (options.ifMatch) spec.conditional = 'ifMatch';
    const response = await this.#send(spec);
    return { etag: headerString(response.headers.etag) };
  }

  /** Server-side copy of a whole object (up to 5 GiB) within the bucket. */
  async copy(from: string, to: string, options: { ifNoneMatch?: '*' } = {}): Promise<{ etag: string }> {
    const headers: Record<string, string> = { 'x-amz-copy-source': this.#copySource(from) };
    if (options.ifNoneMatch) headers['if-none-match'] = options.ifNoneMatch;
    const spec: RequestSpec = { operation: 'copy', key: to, object: true, method: 'PUT', headers, errorIn200: true, xmlRoot: 'CopyObjectResult' };
    if (options.ifNoneMatch) spec.conditional = 'ifNoneMatch';
    const response = await this.#send(spec);
    return { etag: tag(response.body.toString('utf8'), 'ETag') ?? '' };
  }

  /** Deletes one object (absent is fine). */
  async delete(key: string): Promise<void> {
    await this.#send({ operation: 'delete', key, object: true, method: 'DELETE', accept: (s) => (s >= 200 && s < 300) || s === 404 });
  }

  /** DeleteObjects in batches of 1,000 (a few batches at once); throws naming the keys that failed. */
  async deleteMany(keys: readonly string[], options: { concurrency?: number } = {}): Promise<{ deleted: number }> {
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += 1000) batches.push(keys.slice(i, i + 1000));
    const failures: { key: string; code: string; message: string }[] = [];
    await mapLimit(batches, options.concurrency ?? 4, async (batch) => {
      const xml = `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>${batch
        .map((key) => `<Object><Key>${xmlEscape(key)}</Key></Object>`)
        .join('')}</Delete>`;
      const data = Buffer.from(xml, 'utf8');
      const response = await this.#send({
        operation: 'deleteMany', key: batch[0], object: false, method: 'POST', query: [['delete', '']],
        headers: { 'content-type': 'application/xml', 'content-md5': createHash('md5').update(data).digest('base64') },
        body: { kind: 'buffer', data }, errorIn200: true, xmlRoot: 'DeleteResult',
      });
      for (const block of blocks(response.body.toString('utf8'), 'Error')) {
        failures.push({ key: tag(block, 'Key') ?? '', code: tag(block, 'Code') ?? '', message: tag(block, 'Message') ?? '' });
      }
    });
    if (failures.length > 0) {
      const sample = failures.slice(0, 3).map((f) => `"${f.key}" (${f.code}: ${f.message})`).join(', ');
      throw new S3Error(this.#scrub(`S3 deleteMany failed for ${failures.length} of ${keys.length} keys: ${sample}${failures.length > 3 ? ', …' : ''}`), {
        operation: 'deleteMany', key: failures[0]?.key ?? '', attempts: 1, code: failures[0]?.code ?? '',
      });
    }
    return { deleted: keys.length };
  }

  /**
   * Uploads a file in parts of exactly `partSize` (the last smaller), as R2 requires; a file not
   * larger than one part goes in one PUT. Aborts the upload when a part or the completion fails.
   */
  async putLarge(key: string, file: string, options: MultipartOptions = {}): Promise<{ etag: string }> {
    const partSize = checkPartSize(options.partSize ?? DEFAULT_PART_SIZE);
    const { size } = await stat(file);
    if (size <= partSize) {
      const putOptions: PutOptions = {};
      if (options.contentType) putOptions.contentType = options.contentType;
      if (options.metadata) putOptions.metadata = options.metadata;
      return this.put(key, file, putOptions);
    }
    const parts: PartPlan[] = [];
    for (let start = 0; start < size; start += partSize) parts.push({ kind: 'upload', start, end: Math.min(size, start + partSize) });
    return { etag: await this.#multipart(key, file, parts, options) };
  }

  /**
   * Rewrites `key` as the local `file` whose first `existingSize` bytes are known to equal the
   * object (the caller checks, e.g. by hash of the old length), sending only the rest: a multipart
   * upload whose first parts are server-side copies (UploadPartCopy) of the object in ranges of
   * exactly `partSize`, followed by uploads of the remaining bytes from the file, in parts of
   * `partSize` too (the last smaller). Every part but the last has the same size, as R2 requires.
   *
   * Trade-off: the object's last `existingSize % partSize` bytes are re-sent rather than copied,
   * since a copied part shorter than `partSize` could not be followed by more parts; so an append
   * uploads at most `partSize - 1` bytes more than was appended. An object smaller than one part is
   * simply uploaded whole.
   */
  async appendByCopy(key: string, existingSize: number, file: string, options: AppendOptions = {}): Promise<AppendResult> {
    const partSize = checkPartSize(options.partSize ?? DEFAULT_PART_SIZE);
    const { size } = await stat(file);
    if (size < existingSize) throw new Error(`S3 appendByCopy of "${key}": the file (${size} bytes) is shorter than the object (${existingSize} bytes)`);
    const copyParts = Math.floor(existingSize / partSize);
    if (copyParts === 0) {
      const { etag } = await this.putLarge(key, file, options);
      return { etag, copiedBytes: 0, uploadedBytes: size };
    }
    const parts: PartPlan[] = [];
    for (let i = 0; i < copyParts; i++) parts.push({ kind: 'copy', start: i * partSize, end: (i + 1) * partSize });
    const copiedBytes = copyParts * partSize;
    for (let start = copiedBytes; start < size; start += partSize) parts.push({ kind: 'upload', start, end: Math.min(size, start + partSize) });
    if (parts.length > MAX_PARTS) throw new Error(`S3 appendByCopy of "${key}": ${parts.length} parts exceed ${MAX_PARTS}; use a larger part size`);
    const etag = await this.#multipart(key, file, parts, options);
    return { etag, copiedBytes, uploadedBytes: size - copiedBytes };
  }

  // --- multipart ---

  /**
   * ListMultipartUploads: the incomplete multipart uploads of keys under `prefix` (initiated, neither
   * completed nor aborted), one page (up to `maxUploads`, default and at most 1,000) per iteration,
   * following `NextKeyMarker` / `NextUploadIdMarker`.
   */
  async *listMultipartUploads(prefix = '', options: { maxUploads?: number } = {}): AsyncGenerator<MultipartUploadInfo[]> {
    let keyMarker = '';
    let uploadIdMarker = '';
    for (;;) {
      const query: [string, string][] = [['uploads', ''], ['prefix', prefix]];
      if (options.maxUploads) query.push(['max-uploads', String(options.maxUploads)]);
      if (keyMarker) query.push(['key-marker', keyMarker]);
      if (uploadIdMarker) query.push(['upload-id-marker', uploadIdMarker]);
      const response = await this.#send({ operation: 'listMultipartUploads', key: prefix, object: false, method: 'GET', query, xmlRoot: 'ListMultipartUploadsResult' });
      const xml = response.body.toString('utf8');
      const urlEncoded = tag(xml, 'EncodingType') === 'url';
      const decodeKey = (raw: string): string => (urlEncoded ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw);
      yield blocks(xml, 'Upload').map((block) => ({
        key: decodeKey(tag(block, 'Key') ?? ''),
        uploadId: tag(block, 'UploadId') ?? '',
        initiated: tag(block, 'Initiated') ?? '',
      }));
      if (tag(xml, 'IsTruncated') !== 'true') return;
      const nextKey = decodeKey(tag(xml, 'NextKeyMarker') ?? '');
      const nextUploadId = tag(xml, 'NextUploadIdMarker') ?? '';
      if (!nextKey || (nextKey === keyMarker && nextUploadId === uploadIdMarker)) {
        throw new S3Error(`S3 listMultipartUploads of "${prefix}" failed: a truncated page whose next markers do not move on`, { operation: 'listMultipartUploads', key: prefix, code: 'S3_BAD_ANSWER', attempts: 1 });
      }
      keyMarker = nextKey;
      uploadIdMarker = nextUploadId;
    }
  }

  /** Every incomplete multipart upload under a prefix. */
  async listAllMultipartUploads(prefix = ''): Promise<MultipartUploadInfo[]> {
    const all: MultipartUploadInfo[] = [];
    for await (const page of this.listMultipartUploads(prefix)) all.push(...page);
    return all;
  }

  /** ListParts: the parts an incomplete upload holds (every page, by part number); null when there is no such upload (NoSuchUpload: completed or aborted). */
  async listParts(key: string, uploadId: string, options: { maxParts?: number } = {}): Promise<PartInfo[] | null> {
    const parts: PartInfo[] = [];
    let marker = '';
    for (;;) {
      const query: [string, string][] = [['uploadId', uploadId]];
      if (options.maxParts) query.push(['max-parts', String(options.maxParts)]);
      if (marker) query.push(['part-number-marker', marker]);
      let response: RawResponse;
      try {
        response = await this.#send({ operation: 'listParts', key, object: true, method: 'GET', query, xmlRoot: 'ListPartsResult' });
      } catch (error) {
        if (error instanceof S3Error && error.code === 'NoSuchUpload') return null;
        throw error;
      }
      const xml = response.body.toString('utf8');
      for (const block of blocks(xml, 'Part')) {
        parts.push({
          partNumber: Number(tag(block, 'PartNumber') ?? 0),
          size: Number(tag(block, 'Size') ?? 0),
          etag: tag(block, 'ETag') ?? '',
          lastModified: tag(block, 'LastModified') ?? '',
        });
      }
      if (tag(xml, 'IsTruncated') !== 'true') return parts;
      const next = tag(xml, 'NextPartNumberMarker') ?? '';
      if (!/^\d+$/.test(next) || Number(next) <= Number(marker || 0)) {
        throw new S3Error(`S3 listParts of "${key}" failed: a truncated page whose next part number marker does not move on`, { operation: 'listParts', key, code: 'S3_BAD_ANSWER', attempts: 1 });
      }
      marker = next;
    }
  }

  /** AbortMultipartUpload: drops an incomplete upload and the parts it holds. False when there was no such upload (already completed or aborted). */
  async abortMultipartUpload(key: string, uploadId: string): Promise<boolean> {
    try {
      await this.#send({ operation: 'abortMultipartUpload', key, object: true, method: 'DELETE', query: [['uploadId', uploadId]] });
      return true;
    } catch (error) {
      if (error instanceof S3Error && error.code === 'NoSuchUpload') return false;
      throw error;
    }
  }

  async #multipart(key: string, file: string, parts: PartPlan[], options: AppendOptions): Promise<string> {
    if (parts.length > MAX_PARTS) throw new Error(`S3 multipart upload of "${key}": ${parts.length} parts exceed ${MAX_PARTS}; use a larger part size`);
    const created = await this.#send({
      operation: 'createMultipartUpload', key, object: true, method: 'POST', query: [['uploads', '']], headers: writeHeaders(options), xmlRoot: 'InitiateMultipartUploadResult',
    });
    const uploadId = tag(created.body.toString('utf8'), 'UploadId');
    if (!uploadId) throw new S3Error(`S3 createMultipartUpload of "${key}" failed: no UploadId in the answer`, { operation: 'createMultipartUpload', key, attempts: 1 });
    try {
      const etags = await mapLimit(parts, options.concurrency ?? 4, async (part, index) => {
        const query: [string, string][] = [['partNumber', String(index + 1)], ['uploadId', uploadId]];
        if (part.kind === 'copy') {
          const headers: Record<string, string> = {
            'x-amz-copy-source': this.#copySource(key),
            'x-amz-copy-source-range': `bytes=${part.start}-${part.end - 1}`,
          };
          if (options.sourceEtag) headers['x-amz-copy-source-if-match'] = options.sourceEtag;
          const spec: RequestSpec = { operation: 'uploadPartCopy', key, object: true, method: 'PUT', query, headers, errorIn200: true, xmlRoot: 'CopyPartResult' };
          if (options.sourceEtag) spec.conditional = 'ifMatch';
          const response = await this.#send(spec);
          const etag = tag(response.body.toString('utf8'), 'ETag');
          if (!etag) throw new S3Error(`S3 uploadPartCopy of "${key}" part ${index + 1} failed: no ETag in the answer`, { operation: 'uploadPartCopy', key, attempts: 1 });
          return etag;
        }
        const response = await this.#send({
          operation: 'uploadPart', key, object: true, method: 'PUT', query,
          body: { kind: 'file', path: file, start: part.start, end: part.end }, etagHeader: true,
        });
        const etag = headerString(response.headers.etag);
        if (!etag) throw new S3Error(`S3 uploadPart of "${key}" part ${index + 1} failed: no ETag in the answer`, { operation: 'uploadPart', key, attempts: 1 });
        return etag;
      });
      const xml = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${etags
        .map((etag, index) => `<Part><PartNumber>${index + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`)
        .join('')}</CompleteMultipartUpload>`;
      const completed = await this.#send({
        operation: 'completeMultipartUpload', key, object: true, method: 'POST', query: [['uploadId', uploadId]],
        headers: { 'content-type': 'application/xml' }, body: { kind: 'buffer', data: Buffer.from(xml, 'utf8') }, errorIn200: true,
        xmlRoot: 'CompleteMultipartUploadResult',
      });
      return tag(completed.body.toString('utf8'), 'ETag') ?? '';
    } catch (error) {
      await this.abortMultipartUpload(key, uploadId).catch(() => undefined);
      throw error;
    }
  }

  // --- transport ---

  #copySource(key: string): string {
    return uriEncode(`${this.bucket}/${key}`, true);
  }

  #path(spec: RequestSpec): string {
    if (spec.object) {
      if (!spec.key) throw new Error(`S3 ${spec.operation}: an empty key`);
      const encoded = uriEncode(spec.key, true);
      return this.pathStyle ? `${this.#basePath}/${this.bucket}/${encoded}` : `${this.#basePath}/${encoded}`;
    }
    return this.pathStyle ? `${this.#basePath}/${this.bucket}` : `${this.#basePath}/`;
  }

  #scrub(text: string): string {
    return this.#secret ? text.split(this.#secret).join('[redacted]') : text;
  }

  async #send(spec: RequestSpec): Promise<RawResponse> {
    const path = this.#path(spec);
    const accept = spec.accept ?? ((status: number) => status >= 200 && status < 300);
    let ambiguous = false;
    for (let attempt = 1; ; attempt++) {
      let response: RawResponse | undefined;
      let failure: unknown;
      try {
        response = await this.#attempt(spec, path, accept);
      } catch (error) {
        failure = error;
      }
      let fields: { code?: string; message?: string; requestId?: string } = {};
      if (response) {
        const ok = accept(response.status);
        const text = !ok || spec.errorIn200 ? response.body.toString('utf8') : '';
        if (ok && !(spec.errorIn200 && isRootError(text))) {
          this.#checkAnswer(spec, response, attempt);
          return response;
        }
        fields = errorFields(text);
      }
      const retryable = response
        ? RETRYABLE_STATUS.has(response.status) || (fields.code !== undefined && RETRYABLE_CODES.has(fields.code))
        : failure instanceof NetworkError || RETRYABLE_NETWORK.has((failure as NodeJS.ErrnoException)?.code ?? '');
      if (!retryable || attempt >= this.#maxAttempts) throw this.#error(spec, attempt, ambiguous, response, fields, failure);
      if (!response && spec.method !== 'GET' && spec.method !== 'HEAD') ambiguous = true;
      await sleep(this.#delay(attempt, response?.headers['retry-after']));
    }
  }

  #delay(attempt: number, retryAfter: string | string[] | undefined): number {
    const ceiling = Math.min(5000, this.#retryBaseMs * 2 ** (attempt - 1));
    let delay = ceiling / 2 + Math.random() * (ceiling / 2);
    const seconds = Number(headerString(retryAfter));
    if (retryAfter !== undefined && Number.isFinite(seconds) && seconds > 0) delay = Math.max(delay, Math.min(20_000, seconds * 1000));
    return delay;
  }

  /**
   * A 2xx answer that is not what S3 sends for this request (a web server or a portal that answers
   * every request 200): S3_BAD_ANSWER naming the endpoint and what came, not retried.
   */
  #checkAnswer(spec: RequestSpec, response: RawResponse, attempts: number): void {
    if (response.status < 200 || response.status >= 300) return;
    const type = headerString(response.headers['content-type']);
    const etag = headerString(response.headers.etag);
    let expected: string | undefined;
    if (spec.xmlRoot && xmlRootName(response.body.toString('utf8')) !== spec.xmlRoot) expected = `${/^[AEIOU]/.test(spec.xmlRoot) ? 'an' : 'a'} ${spec.xmlRoot} XML document`;
    else if (spec.etagHeader && !etag) expected = 'an ETag header';
    // An object read: S3 always names the object's ETag; a web page without one is not an object.
    else if (spec.object && (spec.method === 'GET' || spec.method === 'HEAD') && !etag && /^\s*text\/html\b/i.test(type)) expected = "an object's ETag header";
    if (expected === undefined) return;
    const sample = bodySample(response.body);
    const got = `HTTP ${response.status} ${type || 'without a content type'}${sample ? `: ${sample}` : ''}`;
    const where = `S3 ${spec.operation}${spec.key !== undefined ? ` of "${spec.key}"` : ''}`;
    const details: S3ErrorDetails = { operation: spec.operation, status: response.status, code: 'S3_BAD_ANSWER', attempts };
    if (spec.key !== undefined) details.key = spec.key;
    throw new S3Error(this.#scrub(`${where} failed: the answer of ${this.#endpointLabel} is not S3's (expected ${expected}, got ${got}); is the endpoint an S3 API?`), details);
  }

  #error(spec: RequestSpec, attempts: number, ambiguous: boolean, response: RawResponse | undefined, fields: { code?: string; message?: string; requestId?: string }, failure: unknown): S3Error {
    const where = `S3 ${spec.operation}${spec.key !== undefined ? ` of "${spec.key}"` : ''}`;
    const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
    if (!response) {
      const error = failure as NodeJS.ErrnoException;
      const reason = error?.code ? `${error.code}${error.message && !error.message.includes(error.code) ? ` ${error.message}` : ''}` : String(error?.message ?? error);
      return new S3Error(this.#scrub(`${where} failed: ${reason}${tries}`), { operation: spec.operation, ...(spec.key !== undefined ? { key: spec.key } : {}), ...(error?.code ? { code: error.code } : {}), attempts, ambiguous });
    }
    const status = response.status;
    const code = fields.code ?? defaultCode(status);
    const details: S3ErrorDetails = { operation: spec.operation, status, code, attempts, ambiguous };
    if (spec.key !== undefined) details.key = spec.key;
    if (fields.requestId) details.requestId = fields.requestId;
    const message = this.#scrub(`${where} failed: HTTP ${status} ${code}${fields.message ? `: ${fields.message}` : ''}${tries}`);
    if (spec.conditional && (status === 412 || status === 409 || (spec.conditional === 'ifMatch' && status === 404 && spec.operation === 'put'))) {
      return new PreconditionFailed(message, details);
    }
    if (status === 404 && code === 'NoSuchKey') return new NoSuchKey(message, details);
    if (status === 404 && spec.method === 'GET' && spec.object) return new NoSuchKey(message, details);
    return new S3Error(message, details);
  }

  async #attempt(spec: RequestSpec, path: string, accept: (status: number) => boolean): Promise<RawResponse> {
    const headers: Record<string, string> = { host: this.#host, ...spec.headers };
    let payloadHash = EMPTY_SHA256;
    let length = 0;
    if (spec.body?.kind === 'buffer') {
      payloadHash = sha256Hex(spec.body.data);
      length = spec.body.data.length;
    } else if (spec.body?.kind === 'file') {
      payloadHash = UNSIGNED_PAYLOAD;
      length = spec.body.end - spec.body.start;
    }
    if (spec.body || spec.method === 'PUT' || spec.method === 'POST') headers['content-length'] = String(length);
    const signed = signRequest({
      method: spec.method, path, query: spec.query ?? [], headers, payloadHash, region: this.region,
      accessKeyId: this.accessKeyId, secretAccessKey: this.#secret,
    });
    const fullPath = signed.queryString ? `${path}?${signed.queryString}` : path;
    /** Where the answer's body went, chosen once its head was read. */
    const chosen: { sink?: BufferSink | HashingSink } = {};
    const head = await this.#origin.send({
      method: spec.method,
      target: fullPath,
      headers: signed.headers,
      ...(spec.body?.kind === 'buffer' ? { body: spec.body.data } : spec.body?.kind === 'file' ? { body: { path: spec.body.path, start: spec.body.start, end: spec.body.end } } : {}),
      sink: ({ status, headers }) => {
        const expected = Number(headers['content-length'] ?? NaN);
        const buffered = spec.bufferUpTo !== undefined && Number.isFinite(expected) && expected <= spec.bufferUpTo;
        if ((spec.toFile || spec.hashOnly) && accept(status) && !buffered) chosen.sink = new HashingSink(spec.toFile, spec.fileMode);
        else chosen.sink = new BufferSink(accept(status) || status < 300 ? Infinity : MAX_ERROR_BODY);
        return chosen.sink;
      },
    });
    const { sink } = chosen;
    if (sink instanceof HashingSink) return { status: head.status, headers: head.headers, body: Buffer.alloc(0), written: sink.written, sha256: sink.sha256() };
    return { status: head.status, headers: head.headers, body: sink?.body() ?? Buffer.alloc(0), written: 0 };
  }
}

/** Streams a body into a file (or nowhere) and its sha256, as it comes. */
class HashingSink implements BodySink {
  written = 0;
  readonly #hash: Hash = createHash('sha256');
  readonly #file: WriteStream | null;
  #error: Error | null = null;

  constructor(file: string | undefined, mode: number | undefined) {
    this.#file = file ? createWriteStream(file, mode === undefined ? {} : { mode }) : null;
    this.#file?.on('error', (error) => (this.#error ??= error));
  }

  write(chunk: Buffer): boolean {
    this.written += chunk.length;
    this.#hash.update(chunk);
    return this.#file ? this.#file.write(chunk) : true;
  }

  drained(): Promise<void> {
    // A file that failed or closed never drains: the answer is then read to its end (an error thrown there).
    const file = this.#file;
    return new Promise((resolve) => {
      if (!file || this.#error) return resolve();
      const done = (): void => {
        file.off('drain', done).off('error', done).off('close', done);
        resolve();
      };
      file.on('drain', done).on('error', done).on('close', done);
    });
  }

  end(): Promise<void> {
    const file = this.#file;
    if (!file) return Promise.resolve();
    // Settled once the file is closed, as the download's rename and flush expect.
    return new Promise((resolve, reject) => {
      const settle = (): void => (this.#error ? reject(this.#error) : resolve());
      if (file.closed) return settle();
      file.once('close', settle);
      file.end();
    });
  }

  abort(): void {
    this.#file?.destroy();
  }

  sha256(): string {
    return this.#hash.digest('hex');
  }
}

interface PartPlan {
  kind: 'copy' | 'upload';
  start: number;
  /** Exclusive. */
  end: number;
}

function checkPartSize(partSize: number): number {
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) throw new Error(`S3 multipart: the part size must be an integer of at least ${MIN_PART_SIZE} bytes (5 MiB)`);
  return partSize;
}

function rangeHeader(range: ByteRange): string {
  return `bytes=${range.start}-${range.end ?? ''}`;
}

function headerString(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '');
}

function writeHeaders(options: { contentType?: string; metadata?: Record<string, string> }): Record<string, string> {
  const headers: Record<string, string> = {};
  if (options.contentType) headers['content-type'] = options.contentType;
  for (const [name, value] of Object.entries(options.metadata ?? {})) {
    if (!/^[A-Za-z0-9-_.]+$/.test(name)) throw new Error(`S3 metadata: invalid name "${name}"`);
    if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`S3 metadata: the value of "${name}" must be printable ASCII`);
    headers[`x-amz-meta-${name.toLowerCase()}`] = value;
  }
  return headers;
}

function defaultCode(status: number): string {
  switch (status) {
    case 400: return 'BadRequest';
    case 403: return 'AccessDenied';
    case 404: return 'NotFound';
    case 409: return 'Conflict';
    case 412: return 'PreconditionFailed';
    case 416: return 'InvalidRange';
    case 429: return 'SlowDown';
    case 503: return 'ServiceUnavailable';
    default: return `HTTP${status}`;
  }
}
