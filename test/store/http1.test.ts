// The S3 client's HTTP/1.1 transport (src/store/s3/http1.ts) against servers that write raw bytes
// on 127.0.0.1: answers split at every byte, chunked bodies with extensions and trailers, bodies
// that end at the close, answers cut short, kept-alive connections the server closes, early
// refusals of an upload, and TLS with a CA bundle (a certificate made here with openssl).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferSink, Http1Origin, type BodySink, type Exchange } from '../../src/store/s3/http1.js';
import { S3Client, S3Error } from '../../src/store/s3/client.js';
import { autoTempDir } from '../helpers/temp.js';

interface Received {
  head: string;
  body: Buffer;
}

/** A server that reads each request (head, then Content-Length bytes) and lets `answer` write raw bytes. */
async function rawServer(answer: (socket: Socket, request: Received, index: number) => void | Promise<void>): Promise<{ port: number; connections: () => number; open: () => number; requests: Received[] }> {
  const requests: Received[] = [];
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    let busy = false;
    const next = async (): Promise<void> => {
      if (busy) return;
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = pending.toString('latin1', 0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (pending.length < end + 4 + length) return;
      const request = { head, body: pending.subarray(end + 4, end + 4 + length) };
      pending = pending.subarray(end + 4 + length);
      requests.push(request);
      busy = true;
      await answer(socket, request, requests.length - 1);
      busy = false;
      await next();
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      void next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, connections: () => connections, open: () => sockets.size, requests };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function origin(port: number, overrides: Partial<ConstructorParameters<typeof Http1Origin>[0]> = {}): Http1Origin {
  const made = new Http1Origin({ secure: false, hostname: '127.0.0.1', port, maxSockets: 4, timeoutMs: 2000, ...overrides });
  cleanups.push(() => made.close());
  return made;
}

/** GET `target` and keep the whole body. */
async function get(to: Http1Origin, target = '/k', method = 'GET'): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  let sink!: BufferSink;
  const head = await to.send({ method, target, headers: { host: 'test' }, sink: () => (sink = new BufferSink()) });
  return { ...head, body: sink.body() };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Writes `data` one byte at a time, each in a write of its own. */
async function byteByByte(socket: Socket, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length; i++) {
    socket.write(data.subarray(i, i + 1));
    await tick();
  }
}

describe('the HTTP/1.1 transport', () => {
  it('reads a chunked answer split at every byte (extensions, trailers), then reuses the connection', async () => {
    const answer = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: "e1"\r\n\r\n5;name=x\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n');
    const server = await rawServer((socket, _request, index) => (index === 0 ? byteByByte(socket, answer) : void socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')));
    const to = origin(server.port);
    const first = await get(to);
    expect(first.status).toBe(200);
    expect(first.headers.etag).toBe('"e1"');
    expect(first.body.toString()).toBe('hello, world!!!');
    expect((await get(to)).body.toString()).toBe('ok');
    expect(server.connections()).toBe(1);
  });

  it('reads a Content-Length answer split at every byte, and a body that ends at the close', async () => {
    const server = await rawServer(async (socket, _request, index) => {
      if (index === 0) await byteByByte(socket, Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Two: a\r\nX-Two: b\r\n\r\nhello there'));
      else socket.end('HTTP/1.1 200 OK\r\n\r\nuntil the close');
    });
    const to = origin(server.port);
    const first = await get(to);
    expect(first.body.toString()).toBe('hello there');
    expect(first.headers['x-two']).toBe('a, b');
    expect((await get(to)).body.toString()).toBe('until the close');
    expect((await get(to)).body.toString()).toBe('until the close'); // that connection was not reused
    expect(server.connections()).toBe(2);
  });

  it('keeps at most maxSockets connections and reuses them', async () => {
    let inFlight = 0;
    let most = 0;
    const server = await rawServer(async (socket) => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    });
    const to = origin(server.port, { maxSockets: 3 });
    await Promise.all(Array.from({ length: 40 }, () => get(to)));
    expect(server.requests).toHaveLength(40);
    expect(most).toBe(3);
    expect(server.connections()).toBe(3);
  });

  it('HEAD, 204 and 304 answers have no body, whatever their Content-Length; a 100 Continue is skipped', async () => {
    const server = await rawServer((socket, request) => {
      if (request.head.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
      else if (request.head.includes('/204')) socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      else if (request.head.includes('/304')) socket.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n');
      else socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody');
    });
    const to = origin(server.port);
    const head = await get(to, '/k', 'HEAD');
    expect(head.headers['content-length']).toBe('1000');
    expect(head.body.length).toBe(0);
    expect((await get(to, '/204')).status).toBe(204);
    expect((await get(to, '/304')).status).toBe(304);
    const continued = await get(to);
    expect([continued.status, continued.body.toString()]).toEqual([200, 'body']);
    expect(server.connections()).toBe(1);
  });

  it('an answer cut short fails as truncated, and its sink is aborted', async () => {
    const server = await rawServer((socket, request) => {
      if (request.head.includes('/chunked')) socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part');
      else socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part');
    });
    const to = origin(server.port);
    for (const target of ['/length', '/chunked']) {
      let aborted = false;
      const sink: BodySink = { write: () => true, drained: () => Promise.resolve(), end: () => Promise.resolve(), abort: () => (aborted = true) };
      const error = await to.send({ method: 'GET', target, headers: {}, sink: () => sink }).catch((e: unknown) => e);
      expect((error as { code?: string }).code).toBe('S3_TRUNCATED');
      expect(aborted).toBe(true);
    }
  });

  it('a kept-alive connection the server closes: while idle it is not reused; under a request it fails as a reset the S3 client retries', async () => {
    const server = await rawServer((socket, request, index) => {
      if (index === 0) {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na');
        setTimeout(() => socket.destroy(), 20); // closed while idle
      } else if (request.head.includes('/vanish')) socket.destroy(); // closed as the request comes
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb');
    });
    const to = origin(server.port);
    expect((await get(to)).body.toString()).toBe('a');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await get(to)).body.toString()).toBe('b');
    const error = await get(to, '/vanish').catch((e: unknown) => e);
    expect((error as { code?: string }).code).toMatch(/^(ECONNRESET|EPIPE)$/);
    // The S3 client retries it on a new connection.
    let vanished = 0;
    const flaky = await rawServer((socket, request) => {
      if (vanished++ === 0) return void socket.destroy();
      expect(request.head).toMatch(/^GET \/bucket\/key HTTP\/1\.1\r\n/);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter');
    });
    const client = new S3Client({ endpoint: `http://127.0.0.1:${flaky.port}`, region: 'us-east-1', bucket: 'bucket', pathStyle: true, provider: 'other', accessKeyId: 'id', secretAccessKey: 'secret', retryBaseMs: 1 });
    cleanups.push(() => client.close());
    expect((await client.get('key')).toString()).toBe('after');
    expect(flaky.connections()).toBe(2);
  });

  it('a refusal that comes before the upload is sent ends the connection; the upload stops', async () => {
    const work = autoTempDir('persist-http1-');
    const file = join(work, 'big');
    writeFileSync(file, randomBytes(32 * 1024 * 1024));
    let refused = 0;
    const early = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        refused++;
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied');
      });
    });
    await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => early.close(() => resolve())));
    const to = origin((early.address() as AddressInfo).port);
    let sink!: BufferSink;
    const exchange: Exchange = { method: 'PUT', target: '/k', headers: { 'content-length': String(32 * 1024 * 1024) }, body: { path: file, start: 0, end: 32 * 1024 * 1024 }, sink: () => (sink = new BufferSink()) };
    const head = await to.send(exchange);
    expect([head.status, sink.body().toString()]).toEqual([403, 'denied']);
    expect(refused).toBe(1);
  });

  it('a slow sink holds the socket back and gets every byte in order', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const server = await rawServer((socket) => void socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data])));
    const to = origin(server.port);
    const chunks: Buffer[] = [];
    let waits = 0;
    const sink: BodySink = {
      write: (chunk) => (chunks.push(Buffer.from(chunk)), chunks.length % 4 !== 0),
      drained: () => (waits++, new Promise((resolve) => setTimeout(resolve, 2))),
      end: () => Promise.resolve(),
      abort: () => undefined,
    };
    await to.send({ method: 'GET', target: '/k', headers: {}, sink: () => sink });
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(waits).toBeGreaterThan(0);
  });

  it('a sink that stops draining once ended (as a Writable does) leaves the connection usable', async () => {
    const data = randomBytes(1024 * 1024);
    const server = await rawServer((socket) => void socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data])));
    const to = origin(server.port, { maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      let ended = false;
      let size = 0;
      const sink: BodySink = {
        write: (chunk) => ((size += chunk.length), false),
        drained: () => new Promise((resolve) => setTimeout(() => !ended && resolve(), 1)),
        end: async () => void (ended = true),
        abort: () => undefined,
      };
      await to.send({ method: 'GET', target: '/k', headers: {}, sink: () => sink });
      expect(size).toBe(data.length);
    }
    expect(server.connections()).toBe(1);
  });

  it('a malformed answer fails, naming what was wrong', async () => {
    const server = await rawServer((socket, request) => {
      if (request.head.includes('/status')) socket.write('HTCPCP/1.0 418 teapot\r\n\r\n');
      else if (request.head.includes('/length')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc');
      else socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    });
    const to = origin(server.port);
    for (const [target, message] of [['/status', /status line/], ['/length', /Content-Length/], ['/chunk', /hexadecimal/]] as const) {
      const error = (await get(to, target).catch((e: unknown) => e)) as { code?: string; message: string };
      expect(error.code).toBe('S3_BAD_ANSWER');
      expect(error.message).toMatch(message);
    }
  });
});

describe('the S3 client over TLS', () => {
  it('trusts the CA bundle it is given, and refuses a certificate it cannot verify without retrying', async () => {
    const work = autoTempDir('persist-tls-');
    const key = join(work, 'key.pem');
    const cert = join(work, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    let served = 0;
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (request, response) => {
      served++;
      response.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no Content-Length
      response.end(`${request.method} ${request.url} over TLS`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
    const port = (server.address() as AddressInfo).port;
    const make = (caBundle?: string): S3Client => {
      const client = new S3Client({ endpoint: `https://localhost:${port}`, region: 'auto', bucket: 'b', pathStyle: true, provider: 'r2', accessKeyId: 'id', secretAccessKey: 'secret', retryBaseMs: 1, ...(caBundle ? { caBundle } : {}) });
      cleanups.push(() => client.close());
      return client;
    };
    expect((await make(cert).get('some key')).toString()).toBe('GET /b/some%20key over TLS');
    const error = (await make().get('k').catch((e: unknown) => e)) as S3Error;
    expect(error).toBeInstanceOf(S3Error);
    expect(error.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(error.attempts).toBe(1);
    expect(served).toBe(1);
  });
});
