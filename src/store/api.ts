// The store of a bucket reached through its S3 API. The client (and node:tls with it) is loaded
// only when a store method is first called, so that commands that never reach the bucket pay
// nothing for it at start-up.
import type { Host } from '../host/types.js';
import type { ResolvedBucket } from '../spec/types.js';
import { apiTransfers, Slots } from './limit.js';
import type { S3Client } from './s3/client.js';
import type { S3Store } from './s3/store.js';
import type { KnownObject, Store, StoredInfo, StoreListing, Transferred, TransferOptions, WriteOptions } from './types.js';

/** `s3://bucket/prefix` for messages. */
export function apiLabel(bucket: Pick<ResolvedBucket, 'name' | 'prefix'>): string {
  const prefix = (bucket.prefix ?? '').replace(/^\/+|\/+$/g, '');
  return `s3://${bucket.name}${prefix ? `/${prefix}` : ''}`;
}

/** A client for the bucket (loaded lazily); throws a one-line error when it has no credentials. */
export async function clientFor(bucket: ResolvedBucket): Promise<S3Client> {
  if (!bucket.credentials) {
    throw new Error(`bucket ${bucket.key} (${bucket.name}) has no credentials: its S3 API needs buckets.${bucket.key}.credentials.accessKeyId and secretAccessKey`);
  }
  const { S3Client } = await import('./s3/client.js');
  return new S3Client({
    ...(bucket.endpoint !== undefined && { endpoint: bucket.endpoint }),
    region: bucket.region ?? (bucket.provider === 'r2' ? 'auto' : 'us-east-1'),
    bucket: bucket.name,
    pathStyle: bucket.pathStyle,
    accessKeyId: bucket.credentials.accessKeyId.reveal(),
    secretAccessKey: bucket.credentials.secretAccessKey.reveal(),
    provider: bucket.provider,
  });
}

/** An S3Store made on first use. */
export class ApiStore implements Store {
  #store: Promise<S3Store> | undefined;
  readonly label: string;

  constructor(
    private readonly host: Host,
    readonly bucket: ResolvedBucket,
  ) {
    this.label = apiLabel(bucket);
  }

  /** The underlying store (the client is created here, once). */
  inner(): Promise<S3Store> {
    this.#store ??= (async () => {
      const [client, { S3Store }] = await Promise.all([clientFor(this.bucket), import('./s3/store.js')]);
      return new S3Store(this.host, client, this.label, this.bucket.prefix ?? '', new Slots(apiTransfers(this.host.env())));
    })();
    return this.#store;
  }

  where(key: string): string {
    return `${this.label}${key ? `/${key}` : ''}`;
  }
  async stat(key: string): Promise<StoredInfo | null> {
    return (await this.inner()).stat(key);
  }
  async readdir(key: string): Promise<string[]> {
    return (await this.inner()).readdir(key);
  }
  async list(key: string, isExcluded: (relativePath: string) => boolean): Promise<StoreListing> {
    return (await this.inner()).list(key, isExcluded);
  }
  async read(key: string): Promise<Buffer> {
    return (await this.inner()).read(key);
  }
  async readHead(key: string, bytes: number): Promise<Buffer> {
    return (await this.inner()).readHead(key, bytes);
  }
  async hash(key: string): Promise<string> {
    return (await this.inner()).hash(key);
  }
  async write(key: string, data: string | Buffer, options?: WriteOptions): Promise<void> {
    return (await this.inner()).write(key, data, options);
  }
  async upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    return (await this.inner()).upload(localPath, key, options);
  }
  async uploadGrown(localPath: string, key: string, options: TransferOptions, base: KnownObject): Promise<Transferred> {
    return (await this.inner()).uploadGrown(localPath, key, options, base);
  }
  async download(key: string, localPath: string, options: TransferOptions): Promise<Transferred> {
    return (await this.inner()).download(key, localPath, options);
  }
  async copy(from: string, to: string): Promise<void> {
    return (await this.inner()).copy(from, to);
  }
  async rename(from: string, to: string): Promise<void> {
    return (await this.inner()).rename(from, to);
  }
  async remove(key: string): Promise<void> {
    return (await this.inner()).remove(key);
  }
  async pruneEmptyFolders(): Promise<void> {}
  /** Every write through the API is whole and in the store when it returns: nothing to wait for. */
  async flush(): Promise<null> {
    return null;
  }

  localPath(): null {
    return null;
  }
}
