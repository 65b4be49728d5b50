// HTTP/1.1 to one origin, for the S3 client: kept-alive connections (at most `maxSockets` open),
// answers framed by Content-Length, chunked or the connection's close, TLS with a CA bundle of
// the caller's choice. It replaces node:http, which costs 2.2-2.6 times the CPU a request of the
// protocol itself (docs/s3-client.md, "The HTTP transport"); on a loopback server sharing the
// client's cores that CPU is taken from the server.
//
// What it does not do, because the S3 client never needs it: send chunked bodies, pipeline
// requests, follow redirects, go through a proxy, speak HTTP/2. Retries are the S3 client's: a
// connection that fails fails the request with the socket's code (ECONNRESET when a kept-alive
// connection was closed under a request before any byte of its answer came), exactly as node:http did.
import { createReadStream, type ReadStream } from 'node:fs';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A request that failed on the wire: `code` is what the retry policy reads. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface AnswerHead {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
}

/** Where the body of an answer goes. */
export interface BodySink {
  /** Takes a chunk; false asks for no more until `drained` resolves. */
  write(chunk: Buffer): boolean;
  drained(): Promise<void>;
  /** Every byte was given: resolves once they are where they go (rejects with the sink's own error). */
  end(): Promise<void>;
  /** The answer failed part-way: release what the sink holds. */
  abort(): void;
}

export interface Exchange {
  method: string;
  /** The request target: path and query string, already encoded. */
  target: string;
  headers: Record<string, string>;
  body?: Buffer | { path: string; start: number; end: number };
  /** Where the answer's body goes, chosen once its head is read. */
  sink(head: AnswerHead): BodySink;
}

export interface OriginOptions {
  secure: boolean;
  hostname: string;
  port: number;
  /** PEM certificates to trust instead of Node's bundled roots. */
  ca?: Buffer;
  maxSockets: number;
  /** Idle time allowed on a busy connection (nothing sent or received) before the request fails. */
  timeoutMs: number;
}

/** The largest answer head accepted (S3 heads are about 1 KiB). */
const MAX_HEAD = 64 * 1024;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

interface Connection {
  socket: Socket;
  state: 'busy' | 'idle' | 'gone';
  idleSince: number;
  /** How long the server keeps an idle connection (its `Keep-Alive: timeout=`), less a second. */
  keepIdleMs: number;
  /** Bytes of the request in flight, or of its answer: null between requests. */
  onData: ((chunk: Buffer) => void) | null;
  onEnd: ((error?: Error) => void) | null;
}

export class Http1Origin {
  readonly #options: OriginOptions;
  readonly #connections = new Set<Connection>();
  /** Kept-alive connections, the most recently used last. */
  readonly #idle: Connection[] = [];
  readonly #waiting: (() => void)[] = [];
  #closed = false;

  constructor(options: OriginOptions) {
    this.#options = options;
  }

  /** Sends the request and reads its answer whole into the sink the exchange chose; resolves with the answer's head. */
  async send(exchange: Exchange): Promise<AnswerHead> {
    const connection = await this.#acquire();
    let reusable = false;
    try {
      const { head, keep, sink } = await this.#exchange(connection, exchange);
      reusable = keep;
      this.#release(connection, reusable);
      await sink.end();
      return head;
    } finally {
      if (!reusable) this.#release(connection, false);
    }
  }

  /** Closes every connection, busy ones too (their requests fail). */
  close(): void {
    this.#closed = true;
    for (const connection of this.#connections) connection.socket.destroy();
  }

  async #acquire(): Promise<Connection> {
    for (;;) {
      if (this.#closed) throw new NetworkError('the S3 client was closed', 'S3_CLIENT_CLOSED');
      for (let connection = this.#idle.pop(); connection; connection = this.#idle.pop()) {
        if (Date.now() - connection.idleSince < connection.keepIdleMs && !connection.socket.destroyed) {
          connection.state = 'busy';
          connection.socket.ref();
          connection.socket.setTimeout(this.#options.timeoutMs);
          return connection;
        }
        this.#drop(connection);
      }
      if (this.#connections.size < this.#options.maxSockets) return this.#connect();
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  #release(connection: Connection, reusable: boolean): void {
    if (connection.state !== 'busy') return;
    connection.onData = null;
    connection.onEnd = null;
    if (reusable && !this.#closed && !connection.socket.destroyed) {
      connection.state = 'idle';
      connection.idleSince = Date.now();
      connection.socket.setTimeout(0);
      connection.socket.unref(); // an idle connection never keeps the process alive
      this.#idle.push(connection);
    } else this.#drop(connection);
    this.#waiting.shift()?.();
  }

  #drop(connection: Connection): void {
    if (connection.state === 'gone') return;
    const wasIdle = connection.state === 'idle';
    connection.state = 'gone';
    connection.socket.destroy();
    this.#connections.delete(connection);
    if (wasIdle) {
      const at = this.#idle.indexOf(connection);
      if (at >= 0) this.#idle.splice(at, 1);
      this.#waiting.shift()?.();
    }
  }

  #connect(): Promise<Connection> {
    const { secure, hostname, port, ca, timeoutMs } = this.#options;
    const socket = secure
      ? tlsConnect({ host: hostname, port, ALPNProtocols: ['http/1.1'], ...(isIP(hostname) ? {} : { servername: hostname }), ...(ca ? { ca } : {}) })
      : netConnect({ host: hostname, port });
    const connection: Connection = { socket, state: 'busy', idleSince: 0, keepIdleMs: Infinity, onData: null, onEnd: null };
    this.#connections.add(connection);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    socket.setTimeout(timeoutMs);
    // Bytes while no request is in flight are a broken server: the connection cannot be trusted.
    socket.on('data', (chunk: Buffer) => (connection.onData ? connection.onData(chunk) : this.#drop(connection)));
    socket.on('error', (error) => connection.onEnd?.(error));
    socket.on('close', () => {
      connection.onEnd?.();
      if (connection.state === 'idle') this.#drop(connection);
    });
    socket.on('timeout', () => connection.onEnd?.(new NetworkError(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT')));
    return new Promise((resolve, reject) => {
      connection.onEnd = (error) => {
        this.#drop(connection);
        this.#waiting.shift()?.();
        reject(error ?? new NetworkError('the connection closed while it was being made', 'ECONNRESET'));
      };
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        connection.onEnd = null;
        resolve(connection);
      });
    });
  }

  /** One request and its answer on `connection`; `keep`: the connection may carry the next request. */
  #exchange(connection: Connection, exchange: Exchange): Promise<{ head: AnswerHead; keep: boolean; sink: BodySink }> {
    const { socket } = connection;
    return new Promise((resolve, reject) => {
      const answer = new AnswerParser(exchange.method === 'HEAD');
      let sink: BodySink | null = null;
      let upload: ReadStream | null = null;
      let sent = exchange.body === undefined || Buffer.isBuffer(exchange.body);
      let settled = false;
      const fail = (error: Error): void => {
        if (settled) return;
        settled = true;
        upload?.destroy();
        sink?.abort();
        socket.destroy();
        reject(error);
      };
      const finish = (): void => {
        if (settled) return;
        settled = true;
        upload?.unpipe(socket);
        upload?.destroy();
        // Read again at once, whatever the sink still holds: a sink that is ended may never drain
        // (a Writable does not), and an idle connection must notice the server closing it.
        socket.resume();
        // An answer that came before the whole request went out (an early refusal) ends the connection.
        resolve({ head: answer.head!, keep: answer.keepAlive && sent, sink: sink! });
      };
      connection.onEnd = (error) => {
        if (!error && answer.endsAtClose()) {
          if (sink) finish();
          return;
        }
        if (error) fail(error);
        else if (answer.started) fail(new NetworkError('the connection closed before the answer was complete', 'S3_TRUNCATED'));
        else fail(new NetworkError('the connection closed before an answer came', 'ECONNRESET'));
      };
      connection.onData = (chunk) => {
        try {
          for (const part of answer.feed(chunk)) {
            if (part === 'head') {
              const head = answer.head!;
              if (head.headers['keep-alive']) connection.keepIdleMs = keepAliveHint(head.headers['keep-alive']);
              sink = exchange.sink(head);
            } else if (!sink!.write(part) && !socket.isPaused()) {
              socket.pause();
              void sink!.drained().then(() => {
                if (!settled) socket.resume();
              });
            }
          }
        } catch (error) {
          fail(error as Error);
          return;
        }
        if (answer.done) finish();
      };

      let head = `${exchange.method} ${exchange.target} HTTP/1.1\r\n`;
      for (const name in exchange.headers) head += `${name}: ${exchange.headers[name]}\r\n`;
      head += '\r\n';
      const body = exchange.body;
      if (body === undefined || Buffer.isBuffer(body)) {
        socket.cork();
        socket.write(head, 'latin1');
        if (body?.length) socket.write(body);
        socket.uncork();
        return;
      }
      socket.write(head, 'latin1');
      if (body.end <= body.start) {
        sent = true;
        return;
      }
      upload = createReadStream(body.path, { start: body.start, end: body.end - 1 });
      upload.on('error', fail); // a local read error: not the network's, never retried
      upload.on('end', () => (sent = true));
      upload.pipe(socket, { end: false });
    });
  }
}

/** `Keep-Alive: timeout=5` → keep the connection idle at most 4 s (Node's agent does the same). */
function keepAliveHint(value: string): number {
  const seconds = /\btimeout=(\d+)/i.exec(value);
  return seconds ? Math.max(0, Number(seconds[1]) - 1) * 1000 : Infinity;
}

type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/**
 * Reads one answer from the bytes of a connection: its head, then its body by its framing.
 * `feed` yields 'head' once the head is read, then the body's chunks as they come.
 */
class AnswerParser {
  head: AnswerHead | null = null;
  keepAlive = false;
  done = false;
  /** A byte of the answer came. */
  started = false;
  #pending: Buffer | null = null;
  #framing: Framing = { kind: 'none' };
  /** Chunked: 'size' (a size line), 'data' (`#left` bytes), 'data-end' (its CRLF), 'trailer' (lines until an empty one). */
  #chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  #left = 0;

  constructor(private readonly isHead: boolean) {}

  /** The body ends where the connection closes, and every byte of it came. */
  endsAtClose(): boolean {
    return this.head !== null && this.#framing.kind === 'close';
  }

  *feed(chunk: Buffer): Generator<'head' | Buffer> {
    this.started = true;
    let data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = null;
    while (!this.head) {
      const end = data.indexOf(HEAD_END);
      if (end < 0) {
        if (data.length > MAX_HEAD) throw new NetworkError(`the answer's head is over ${MAX_HEAD} bytes`, 'S3_BAD_ANSWER');
        this.#pending = data;
        return;
      }
      const parsed = parseHead(data.toString('latin1', 0, end));
      data = data.subarray(end + 4);
      if (parsed.status >= 100 && parsed.status < 200) continue; // 100 Continue and the like: the answer follows
      this.head = { status: parsed.status, headers: parsed.headers };
      const connection = parsed.headers.connection?.toLowerCase() ?? '';
      this.keepAlive = parsed.version === '1.1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
      this.#framing = framing(parsed.status, parsed.headers, this.isHead);
      if (this.#framing.kind === 'close') this.keepAlive = false;
      yield 'head';
      if (this.#framing.kind === 'none' || (this.#framing.kind === 'length' && this.#framing.left === 0)) this.done = true;
    }
    if (this.done) {
      if (data.length > 0) this.keepAlive = false; // bytes after the answer: the connection is not to be trusted
      return;
    }
    const framingNow = this.#framing;
    if (framingNow.kind === 'close') {
      if (data.length) yield data;
    } else if (framingNow.kind === 'length') {
      const take = Math.min(framingNow.left, data.length);
      if (take) yield data.subarray(0, take);
      framingNow.left -= take;
      if (framingNow.left === 0) {
        this.done = true;
        if (data.length > take) this.keepAlive = false;
      }
    } else yield* this.#chunked(data);
  }

  *#chunked(data: Buffer): Generator<Buffer> {
    let at = 0;
    while (at < data.length && !this.done) {
      if (this.#chunkState === 'data') {
        const take = Math.min(this.#left, data.length - at);
        yield data.subarray(at, at + take);
        at += take;
        this.#left -= take;
        if (this.#left === 0) this.#chunkState = 'data-end';
        continue;
      }
      const lineEnd = data.indexOf(CRLF, at);
      if (lineEnd < 0) {
        if (data.length - at > MAX_HEAD) throw new NetworkError('a chunk size line is too long', 'S3_BAD_ANSWER');
        this.#pending = data.subarray(at);
        return;
      }
      const line = data.toString('latin1', at, lineEnd);
      at = lineEnd + 2;
      if (this.#chunkState === 'data-end') {
        if (line !== '') throw new NetworkError('a chunk does not end where its size says', 'S3_BAD_ANSWER');
        this.#chunkState = 'size';
      } else if (this.#chunkState === 'size') {
        const size = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
        if (!size) throw new NetworkError('a chunk size is not a hexadecimal number', 'S3_BAD_ANSWER');
        this.#left = parseInt(size[1]!, 16);
        this.#chunkState = this.#left === 0 ? 'trailer' : 'data';
      } else if (line === '') this.done = true; // the empty line after the trailers
    }
    if (this.done && at < data.length) this.keepAlive = false;
  }
}

function parseHead(text: string): { version: string; status: number; headers: Record<string, string> } {
  const lines = text.split('\r\n');
  const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!statusLine) throw new NetworkError('the answer does not start with an HTTP/1.x status line', 'S3_BAD_ANSWER');
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new NetworkError('the answer has a malformed header line', 'S3_BAD_ANSWER');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { version: `1.${statusLine[1]}`, status: Number(statusLine[2]), headers };
}

function framing(status: number, headers: Record<string, string>, isHead: boolean): Framing {
  if (isHead || status === 204 || status === 304) return { kind: 'none' };
  const coding = headers['transfer-encoding'];
  if (coding !== undefined) {
    if (/(^|,)\s*chunked\s*$/i.test(coding)) return { kind: 'chunked' };
    return { kind: 'close' };
  }
  const length = headers['content-length'];
  if (length === undefined) return { kind: 'close' };
  const values = new Set(length.split(',').map((value) => value.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) throw new NetworkError(`the answer's Content-Length is not one number: ${length}`, 'S3_BAD_ANSWER');
  return { kind: 'length', left: Number(only) };
}

/** Keeps a body in memory: all of it, or its first `limit` bytes (the rest is counted, not kept). */
export class BufferSink implements BodySink {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  size = 0;

  constructor(private readonly limit = Infinity) {}

  write(chunk: Buffer): boolean {
    this.size += chunk.length;
    if (this.#kept < this.limit) {
      const part = chunk.length <= this.limit - this.#kept ? chunk : chunk.subarray(0, this.limit - this.#kept);
      this.#chunks.push(part);
      this.#kept += part.length;
    }
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  end(): Promise<void> {
    return Promise.resolve();
  }

  abort(): void {
    this.#chunks.length = 0;
  }

  /** What was kept. */
  body(): Buffer {
    return this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
  }
}
