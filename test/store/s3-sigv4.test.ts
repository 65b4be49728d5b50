// SigV4 against the worked examples of the S3 documentation ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk", examplebucket, 20130524).
import { describe, expect, it } from 'vitest';
import { canonicalQuery, EMPTY_SHA256, sha256Hex, signRequest, uriEncode } from '../../src/store/s3/sigv4.js';

const base = {
  region: 'us-east-1',
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  date: new Date(Date.UTC(2013, 4, 24, 0, 0, 0)),
};
const host = 'examplebucket.s3.amazonaws.com';

describe('signRequest (AWS documented examples)', () => {
  it('GET object with a range', () => {
    const signed = signRequest({ ...base, method: 'GET', path: '/test.txt', headers: { Host: host, Range: 'bytes=0-9' }, payloadHash: EMPTY_SHA256 });
    expect(signed.canonicalRequest).toBe(
      ['GET', '/test.txt', '', `host:${host}`, 'range:bytes=0-9', `x-amz-content-sha256:${EMPTY_SHA256}`, 'x-amz-date:20130524T000000Z', '',
        'host;range;x-amz-content-sha256;x-amz-date', EMPTY_SHA256].join('\n'),
    );
    expect(signed.signature).toBe('f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
    expect(signed.headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  it('PUT object with a key that needs encoding and a signed payload', () => {
    const body = 'Welcome to Amazon S3.';
    expect(sha256Hex(body)).toBe('44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072');
    const signed = signRequest({
      ...base, method: 'PUT', path: `/${uriEncode('test$file.text', true)}`,
      headers: { Host: host, Date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
      payloadHash: sha256Hex(body),
    });
    expect(signed.canonicalRequest.split('\n')[1]).toBe('/test%24file.text');
    expect(signed.signature).toBe('98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
  });

  it('GET bucket lifecycle (a query parameter without a value)', () => {
    const signed = signRequest({ ...base, method: 'GET', path: '/', query: [['lifecycle', '']], headers: { host }, payloadHash: EMPTY_SHA256 });
    expect(signed.queryString).toBe('lifecycle=');
    expect(signed.signature).toBe('fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
  });

  it('GET bucket (list objects) with a sorted query', () => {
    const signed = signRequest({ ...base, method: 'GET', path: '/', query: [['prefix', 'J'], ['max-keys', '2']], headers: { host }, payloadHash: EMPTY_SHA256 });
    expect(signed.queryString).toBe('max-keys=2&prefix=J');
    expect(signed.signature).toBe('34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });
});

describe('uriEncode', () => {
  it('keeps only unreserved characters (and / in paths), in UTF-8 upper-case hex', () => {
    expect(uriEncode("a b+c%d/é!'()*~._-", true)).toBe('a%20b%2Bc%25d/%C3%A9%21%27%28%29%2A~._-');
    expect(uriEncode('a/b')).toBe('a%2Fb');
    expect(uriEncode('日本')).toBe('%E6%97%A5%E6%9C%AC');
    expect(uriEncode('emoji 😀')).toBe('emoji%20%F0%9F%98%80');
  });

  it('sorts the canonical query by name then value, encoding both', () => {
    expect(canonicalQuery([['prefix', 'a b/c'], ['list-type', '2'], ['continuation-token', 'x+y=']])).toBe(
      'continuation-token=x%2By%3D&list-type=2&prefix=a%20b%2Fc',
    );
  });
});
