// A real S3 server (s3rver) on loopback for end-to-end tests: its own temporary folder, a free
// port, and a count of the write requests it has seen (to prove that observing writes nothing).
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  stop(): Promise<void>;
}

interface FilesystemStore {
  putBucket(name: string): Promise<unknown>;
  putObject(object: unknown): Promise<unknown>;
  getObject(bucket: string, key: string): Promise<{ content: NodeJS.ReadableStream } | null>;
  listObjects(bucket: string, options: ListOptions): Promise<ListResult>;
}

interface ListOptions {
  delimiter?: string;
  prefix?: string;
  startAfter?: string;
  maxKeys?: number;
}

interface ListResult {
  objects: { key: string }[];
  commonPrefixes?: string[];
  isTruncated?: boolean;
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
  fixDelimiterListing(server.store);
  const address = await server.run();
  const port = address.port;
  let seen: RecordedRequest[] = [];
  server.httpServer.prependListener('request', (req: IncomingMessage) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '' });
  });
  return {
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
    async stop() {
      server.httpServer.closeAllConnections?.();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
