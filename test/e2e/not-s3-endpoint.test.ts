// An `endpoint:` that is not an S3 API (a web server answering every request 200 with a page, as
// a default nginx site or a captive portal does): doctor fails naming the endpoint instead of
// passing its "signed list", and plan says the endpoint is not S3 instead of sending the user to
// repair a manifest that is fine. Real HTTP on 127.0.0.1, the built CLI as a child process.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPersist } from './flow-helpers.js';

const PAGE = '<html><body>Welcome to nginx!</body></html>';
const SECRET = 'wJalrXUtnFEMI-web-server-secret';

/** Answers every request 200 with the page; `etag`: with an ETag header too, as nginx serving a static file does. */
async function webServer(etag: boolean): Promise<{ server: Server; endpoint: string }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/html', ...(etag ? { etag: '"5f3c-6a1"' } : {}) });
    res.end(req.method === 'HEAD' ? undefined : PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

let dir: string;
const servers: Server[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'persist-not-s3-'));
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  await rm(dir, { recursive: true, force: true });
});

async function machine(name: string, endpoint: string): Promise<{ root: string; run: (args: string[]) => ReturnType<typeof runPersist> }> {
  const root = join(dir, name);
  await mkdir(join(root, 'notes'), { recursive: true });
  await writeFile(join(root, 'notes', 'a.md'), 'a note\n');
  const spec = [
    'version: 1',
    'buckets:',
    '  data:',
    '    name: mybucket',
    `    endpoint: ${endpoint}`,
    '    region: us-east-1',
    '    provider: other',
    '    credentials:',
    '      accessKeyId: ${env:E2E_S3_KEY}',
    '      secretAccessKey: ${env:E2E_S3_SECRET}',
    'syncs:',
    '  kill1: { from: ./notes, to: kill1, delete: true }',
    '',
  ].join('\n');
  await writeFile(join(root, 'persist.yaml'), spec);
  const keys = { accessKeyId: 'AKIDWEBSERVER', secretAccessKey: SECRET };
  return { root, run: (args) => runPersist([...args, '-f', join(root, 'persist.yaml')], { cwd: root, stateDir: join(root, 'state'), keys }) };
}

describe('an endpoint that is not an S3 API', () => {
  it('doctor fails naming the endpoint; plan says the endpoint is not S3, not that the manifest needs repair', { timeout: 120_000 }, async () => {
    const { server, endpoint } = await webServer(false);
    servers.push(server);
    const m = await machine('no-etag', endpoint);

    const doctor = await m.run(['doctor']);
    expect(doctor.code, doctor.output).toBe(1);
    expect(doctor.stdout).toContain(
      `FAIL S3 API for data: listing s3://mybucket failed: S3 list of "" failed: the answer of ${endpoint} is not S3's (expected a ListBucketResult XML document, got HTTP 200 text/html: ${PAGE}); is the endpoint an S3 API?\n`,
    );
    expect(doctor.stdout).not.toContain('succeeded');

    const plan = await m.run(['plan']);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain(`the answer of ${endpoint} is not S3's (expected an object's ETag header, got HTTP 200 text/html)`);
    expect(plan.stdout).not.toContain('Repair the manifest');
    for (const result of [doctor, plan]) {
      expect(result.output).not.toContain(SECRET);
      expect(result.output).not.toMatch(/Signature=|\n\s+at /);
    }
  });

  it('a page served with an ETag (a static site): doctor still fails; plan says the manifest reads as a page and why', { timeout: 120_000 }, async () => {
    const { server, endpoint } = await webServer(true);
    servers.push(server);
    const m = await machine('etag', endpoint);
    const doctor = await m.run(['doctor']);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toContain(`is not S3's (expected a ListBucketResult XML document, got HTTP 200 text/html: ${PAGE})`);
    const plan = await m.run(['plan']);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain(
      `.persist-sync.json: not valid JSON: it reads as an HTML or XML page ("<html><body>Welcome to nginx!</body></ht"…), not a manifest; if every object of the store reads so, the bucket's endpoint is not an S3 API (persist doctor checks it)`,
    );
    expect(plan.output).not.toContain(SECRET);
  });
});
