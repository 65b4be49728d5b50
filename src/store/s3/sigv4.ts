// AWS Signature Version 4 for S3, header-based (the Authorization header), with node:crypto only.
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
//
// S3 quirks kept here: the canonical URI is the path encoded once (no double encoding, no `.`/`..`
// or `//` normalization), every byte but the unreserved `A-Za-z0-9-._~` percent-encoded (in UTF-8,
// upper-case hex), `/` kept in paths; the query string is encoded the same way (with `/` encoded) and
// sorted by name then value; `x-amz-content-sha256` is always sent and signed.
import { createHash, createHmac } from 'node:crypto';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
/** sha256 of the empty string. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

const EXTRA_RESERVED = /[!'()*]/g;

/**
 * RFC 3986 encoding of a string's UTF-8 bytes: everything but `A-Za-z0-9-._~` (and `/` when
 * `keepSlash`) becomes `%XX`. Throws on a lone surrogate (not representable in UTF-8, so not a key).
 */
export function uriEncode(value: string, keepSlash = false): string {
  const encoded = encodeURIComponent(value).replace(EXTRA_RESERVED, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

/** Canonical query string: each name and value encoded, sorted by encoded name then value. */
export function canonicalQuery(query: Iterable<readonly [string, string]>): string {
  const pairs = [...query].map(([name, value]) => [uriEncode(name), uriEncode(value)] as const);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

/** The last second formatted: every request of a second carries the same stamp. */
let lastStamp = { second: NaN, stamp: '' };

/** `20130524T000000Z` (formatted once a second: a restore signs thousands of requests in one). */
function amzDate(date: Date): string {
  const second = Math.floor(date.getTime() / 1000);
  if (second !== lastStamp.second) lastStamp = { second, stamp: date.toISOString().replace(/[-:]|\.\d{3}/g, '') };
  return lastStamp.stamp;
}

export interface SignInput {
  method: string;
  /** Already-encoded canonical URI (see `uriEncode(path, true)`), e.g. `/bucket/my%20key`. */
  path: string;
  /** Query parameters, unencoded. */
  query?: Iterable<readonly [string, string]>;
  /** Headers to sign (any case); must include `host`. `x-amz-date` and `x-amz-content-sha256` are added. */
  headers: Record<string, string>;
  /** Hex sha256 of the body, or UNSIGNED_PAYLOAD. */
  payloadHash: string;
  region: string;
  service?: string;
  accessKeyId: string;
  secretAccessKey: string;
  date?: Date;
}

export interface SignedRequest {
  /** Every header to send: the input ones (lower-cased names) plus x-amz-date, x-amz-content-sha256, authorization. */
  headers: Record<string, string>;
  /** The canonical query string, to be sent as the request's query too (so both agree byte for byte). */
  queryString: string;
  /** For tests and debugging: never log it with the signature of a real key. */
  canonicalRequest: string;
  stringToSign: string;
  signature: string;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Derived keys by day, region, service and secret (keyed by the secret itself: hashing it cost a hash a request). */
const keyCache = new Map<string, Buffer>();

/** The derived signing key for a day, region and service (cached: it changes once a day). */
function signingKey(secretAccessKey: string, day: string, region: string, service: string): Buffer {
  const cacheKey = `${day}/${region}/${service}/${secretAccessKey}`;
  let key = keyCache.get(cacheKey);
  if (!key) {
    key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), region), service), 'aws4_request');
    if (keyCache.size > 32) keyCache.clear();
    keyCache.set(cacheKey, key);
  }
  return key;
}

export function signRequest(input: SignInput): SignedRequest {
  const service = input.service ?? 's3';
  const stamp = amzDate(input.date ?? new Date());
  const day = stamp.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers)) headers[name.toLowerCase()] = value;
  headers['x-amz-date'] = stamp;
  headers['x-amz-content-sha256'] = input.payloadHash;
  delete headers.authorization;

  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((name) => `${name}:${String(headers[name]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const queryString = canonicalQuery(input.query ?? []);
  const canonicalRequest = [input.method.toUpperCase(), input.path, queryString, canonicalHeaders, signedHeaders, input.payloadHash].join('\n');
  const scope = `${day}/${input.region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', stamp, scope, sha256Hex(canonicalRequest)].join('\n');
  const signature = createHmac('sha256', signingKey(input.secretAccessKey, day, input.region, service)).update(stringToSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${input.accessKeyId}/${scope},SignedHeaders=${signedHeaders},Signature=${signature}`;
  return { headers, queryString, canonicalRequest, stringToSign, signature };
}
