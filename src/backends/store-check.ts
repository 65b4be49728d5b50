// What the store itself holds, asked over its S3 API (HEAD per key, with the bucket's own
// credentials): the check that a backend's cache really reached the bucket, independent of the
// backend that uploaded it. A mount's keys are relative to the bucket's root.
import type { ResolvedBucket } from '../spec/types.js';
import { endpointOf, regionOf, revealCredentials } from './common.js';

export interface StoredObject {
  size: number;
  /** MD5 (hex) of the content: the ETag of a single-part upload, or the `md5chksum` rclone records on a multipart one; null when neither tells it. */
  md5: string | null;
}

function md5Of(etag: string, metadata: Record<string, string>): string | null {
  const plain = etag.replace(/"/g, '').toLowerCase();
  if (/^[0-9a-f]{32}$/.test(plain)) return plain;
  const recorded = Buffer.from(metadata['md5chksum'] ?? '', 'base64').toString('hex');
  return recorded.length === 32 ? recorded : null;
}

/** Size and MD5 of each key in the store; a key the store lacks is absent from the map. */
export async function storedObjects(bucket: ResolvedBucket, keys: string[], caBundle: string | undefined, concurrency = 16): Promise<Map<string, StoredObject>> {
  const { accessKeyId, secretAccessKey } = revealCredentials(bucket);
  // Loaded here: the S3 client brings node:net and node:tls, which a plan without API buckets never needs.
  const { S3Client } = await import('../store/s3/client.js');
  const client = new S3Client({
    endpoint: endpointOf(bucket),
    region: regionOf(bucket),
    bucket: bucket.name,
    pathStyle: bucket.pathStyle,
    accessKeyId,
    secretAccessKey,
    provider: bucket.provider,
    ...(caBundle ? { caBundle } : {}),
    maxAttempts: 3,
  });
  const objects = new Map<string, StoredObject>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const head = await client.head(key);
      if (head) objects.set(key, { size: head.size, md5: md5Of(head.etag, head.metadata) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
  return objects;
}
