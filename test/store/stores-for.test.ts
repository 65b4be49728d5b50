// Which store carries a bucket's syncs, bundles and files (src/store/index.ts, storesFor): the S3
// API for a bucket without a mount and, by default, for an s3fs bucket with credentials; the mount
// for rclone (its write-back cache), for s3fs with `transfers: mount`, and without credentials.
import { describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { ResolvedBucket, ResolvedEnvironment } from '../../src/spec/types.js';
import { storesFor, throughApi } from '../../src/store/index.js';
import { transferConcurrency } from '../../src/store/limit.js';

const credentials = { accessKeyId: new Sensitive('AKIA'), secretAccessKey: new Sensitive('secret') };

function bucket(extra: Partial<ResolvedBucket>): ResolvedBucket {
  return { key: 'data', name: 'b', endpoint: 'http://127.0.0.1:9', pathStyle: true, provider: 'other', ...extra };
}

function storeOf(b: ResolvedBucket) {
  const env = { buckets: { data: b } } as unknown as ResolvedEnvironment;
  return storesFor(env, new MemoryHost())('data');
}

const mount = (backend: 's3fs' | 'rclone' | 'local', options: Record<string, unknown> = {}) => ({ mount: { backend, path: '/data/m', options } });

describe('the store of a bucket', () => {
  it.each([
    ['no mount', bucket({ credentials }), true],
    ['s3fs with credentials (default)', bucket({ credentials, ...mount('s3fs') }), true],
    ['s3fs with transfers: api', bucket({ credentials, ...mount('s3fs', { transfers: 'api' }) }), true],
    ['s3fs with transfers: mount', bucket({ credentials, ...mount('s3fs', { transfers: 'mount' }) }), false],
    ['s3fs without credentials', bucket(mount('s3fs')), false],
    ['rclone with credentials', bucket({ credentials, ...mount('rclone') }), false],
    ['local', bucket(mount('local')), false],
  ] as const)('%s: through the API = %s', (_, b, api) => {
    expect(throughApi(b)).toBe(api);
    const store = storeOf(b);
    // The API store is no folder; a mounted one is its mount path.
    expect(store.localPath('')).toBe(api ? null : '/data/m');
    expect(store.where('x')).toBe(api ? 's3://b/x' : '/data/m/x');
    expect(transferConcurrency(store, {})).toBe(api ? 32 : 3); // through the API: 16 requests in flight (S3Store), twice as many files under way
  });
});
