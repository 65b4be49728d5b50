// The store of a bucket reached through its S3 API. The client (and node:tls with it) is loaded
// only when a store method is first called, so that commands that never reach the bucket pay
// nothing for it at start-up.
import { StoreError } from '../errors.js';
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

/** Network failures: the endpoint could not be reached (after the client's retries). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EPIPE']);
const REFUSED_KEYS = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken']);

/**
 * A failed request of the S3 client as a StoreError naming the bucket and what to check. Judged by
 * the error's fields, not its class: the client module is loaded only once a store is used.
 */
export function storeFailure(error: unknown, bucket: ResolvedBucket): unknown {
  if (!(error instanceof Error) || !['S3Error', 'PreconditionFailed', 'NoSuchKey'].includes(error.name)) return error;
  const { status, code } = error as Error & { status?: number; code?: string };
  const where = `buckets.${bucket.key}`;
  let fix: string;
  let transient = false;
  if (status === 403 || (code !== undefined && REFUSED_KEYS.has(code))) {
    fix = `Check ${where}.credentials (the keys, or the variables they name) and that they may use the bucket ${bucket.name}; persist doctor checks them with one signed list.`;
  } else if (code === 'NoSuchBucket') {
    fix = `Check ${where}.name and ${where}.endpoint: the store has no bucket ${bucket.name} there.`;
  } else if (code !== undefined && UNREACHABLE.has(code)) {
    fix = `Check ${where}.endpoint${bucket.endpoint ? ` (${bucket.endpoint})` : ''} and that this machine reaches it; persist doctor checks it. The next apply tries again.`;
    transient = true;
  } else if ((status !== undefined && status >= 500) || status === 429) {
    fix = 'The store is failing or throttling: the next apply tries again.';
    transient = true;
  } else {
    fix = 'persist doctor checks the endpoint, the bucket and the keys.';
  }
  return new StoreError(`${apiLabel(bucket)} (${where}): ${error.message}`, fix, transient, { cause: error });
}

/** A client for the bucket (loaded lazily); throws a one-line error when it has no credentials. */
export async function clientFor(bucket: ResolvedBucket): Promise<S3Client> {
  if (!bucket.credentials) {
    throw new StoreError(`bucket ${bucket.key} (${bucket.name}) has no credentials`, `Its S3 API needs buckets.${bucket.key}.credentials.accessKeyId and secretAccessKey.`);
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
  /** A request of the store: a failed one as a StoreError naming the bucket (storeFailure). */
  private async call<T>(request: (store: S3Store) => Promise<T>): Promise<T> {
    try {
      return await request(await this.inner());
    } catch (error) {
      throw storeFailure(error, this.bucket);
    }
  }
  async stat(key: string): Promise<StoredInfo | null> {
    return this.call((store) => store.stat(key));
  }
  async readdir(key: string): Promise<string[]> {
    return this.call((store) => store.readdir(key));
  }
  async list(key: string, isExcluded: (relativePath: string) => boolean): Promise<StoreListing> {
    return this.call((store) => store.list(key, isExcluded));
  }
  async read(key: string): Promise<Buffer> {
    return this.call((store) => store.read(key));
  }
  async readHead(key: string, bytes: number): Promise<Buffer> {
    return this.call((store) => store.readHead(key, bytes));
  }
  async hash(key: string): Promise<string> {
    return this.call((store) => store.hash(key));
  }
  async write(key: string, data: string | Buffer, options?: WriteOptions): Promise<void> {
    return this.call((store) => store.write(key, data, options));
  }
  async upload(localPath: string, key: string, options: TransferOptions): Promise<Transferred> {
    return this.call((store) => store.upload(localPath, key, options));
  }
  async uploadGrown(localPath: string, key: string, options: TransferOptions, base: KnownObject): Promise<Transferred> {
    return this.call((store) => store.uploadGrown(localPath, key, options, base));
  }
  async download(key: string, localPath: string, options: TransferOptions): Promise<Transferred> {
    return this.call((store) => store.download(key, localPath, options));
  }
  async copy(from: string, to: string): Promise<void> {
    return this.call((store) => store.copy(from, to));
  }
  async rename(from: string, to: string): Promise<void> {
    return this.call((store) => store.rename(from, to));
  }
  async remove(key: string): Promise<void> {
    return this.call((store) => store.remove(key));
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
