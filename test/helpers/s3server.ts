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
  /** Keys in a bucket, read straight from the store. */
  listObjects(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

interface FilesystemStore {
  putBucket(name: string): Promise<unknown>;
  getObject(bucket: string, key: string): Promise<{ content: NodeJS.ReadableStream } | null>;
  listObjects(bucket: string, options: { maxKeys: number }): Promise<{ objects: { key: string }[] }>;
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
