// A TCP proxy on a free loopback port in front of a server (e.g. the strict S3 server), that can
// slow the traffic down and hold it, switchable at run time: a client's requests are then only
// partly sent at a given moment (a push frozen half-way), or reach the server later than the
// client sent them (writes in flight while the client is stopped). Each connection's two
// directions are forwarded chunk by chunk in order, each chunk after `delayMs`; while held, chunks
// are kept (and the client's side read on, as a kernel would buffer them) until `release()`.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ThrottleProxy {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** Wait this long before forwarding each chunk (0: forward at once). Applies to chunks not yet forwarded too. */
  setDelay(ms: number): void;
  /** Forward nothing more until `release()`. */
  hold(): void;
  release(): void;
  /** Chunks received and not forwarded yet, and their bytes (both directions, every connection). */
  pending(): { chunks: number; bytes: number };
  /** The chunks from clients not forwarded to the server yet, oldest first per connection. */
  pendingToServer(): Buffer[];
  /** Connections open now. */
  connections(): number;
  /** Close every connection and stop listening. */
  stop(): Promise<void>;
}

export async function startThrottleProxy(targetPort: number, options: { delayMs?: number; host?: string } = {}): Promise<ThrottleProxy> {
  const host = options.host ?? '127.0.0.1';
  let delayMs = options.delayMs ?? 0;
  let held = false;
  let pendingChunks = 0;
  let pendingBytes = 0;
  const waiters = new Set<() => void>();
  const toServer = new Set<Buffer>();
  const sockets = new Set<Socket>();
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const unheld = () => (held ? new Promise<void>((resolve) => waiters.add(resolve)) : Promise.resolve());

  /** `from`'s chunks to `to`, one after the other; `from`'s end ends `to` once all went. */
  const forward = (from: Socket, to: Socket, close: () => void, fromClient: boolean): void => {
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      pendingChunks++;
      pendingBytes += chunk.length;
      if (fromClient) toServer.add(chunk);
      chain = chain.then(async () => {
        if (delayMs > 0) await sleep(delayMs);
        await unheld();
        pendingChunks--;
        pendingBytes -= chunk.length;
        toServer.delete(chunk);
        if (!to.destroyed) to.write(chunk);
      });
    });
    from.on('end', () => void chain.then(() => (to.destroyed ? undefined : to.end())));
    from.on('error', close);
    from.on('close', () => void chain.then(close));
  };

  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, host);
    sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    forward(client, upstream, close, true);
    forward(upstream, client, close, false);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const release = () => {
    held = false;
    for (const wake of [...waiters]) wake();
    waiters.clear();
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    setDelay(ms) {
      delayMs = ms;
    },
    hold() {
      held = true;
    },
    release,
    pending: () => ({ chunks: pendingChunks, bytes: pendingBytes }),
    pendingToServer: () => [...toServer],
    connections: () => sockets.size / 2,
    async stop() {
      release();
      delayMs = 0;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await closed;
    },
  };
}
