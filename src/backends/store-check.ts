// What the store itself holds, asked over its S3 API (HEAD per key, with the bucket's own
// credentials): the check that a backend's cache really reached the bucket, independent of the
// backend that uploaded it. A mount's keys are relative to the bucket's root.
import type { ResolvedBucket } from '../spec/types.js';
import { endpointOf, regionOf, revealCredentials } from './common.js';

/** Size of each key in the store; a key the store lacks is absent from the map. */
export async function storedSizes(bucket: ResolvedBucket, keys: string[], caBundle: string | undefined, concurrency = 16): Promise<Map<string, number>> {
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
  const sizes = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      const head = await client.head(key);
      if (head) sizes.set(key, head.size);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
  return sizes;
}
