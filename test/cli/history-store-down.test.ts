// With the store unreachable, `persist history` prints what it could not list and exits 1 (DESIGN:
// an error exits 1; it printed the connection error per resource and exited 0), and `verify` does
// not promise a repair it did not record (it said "the next apply pushes the missing or damaged
// sync files again" when it had checked nothing).
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

/** A port nothing listens on (taken, then freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('history and verify with the store down', () => {
  it('history exits 1 naming what it could not list; verify exits 1 and records no repair', { timeout: 120_000 }, async () => {
    const f = makeFixture();
    const port = await closedPort();
    mkdirSync(join(f.dir, 'state'), { recursive: true });
    writeFileSync(join(f.dir, 'state', 'a.txt'), 'a\n');
    writeFileSync(
      f.spec,
      [
        'version: 1',
        'buckets:',
        '  api:',
        '    name: down-bucket',
        `    endpoint: http://127.0.0.1:${port}`,
        '    region: us-east-1',
        '    provider: other',
        '    credentials: { accessKeyId: "${env:AK}", secretAccessKey: "${env:SK}" }',
        'syncs:',
        '  state: { from: ./state, to: state }',
        '',
      ].join('\n'),
    );
    const env = { AK: 'test-access-key', SK: 'test-secret-key' };
    const history = await f.run(['history'], { env, timeoutMs: 100_000 });
    expect(history.code, `${history.stdout}\n${history.stderr}`).toBe(1);
    expect(history.stdout).toContain('sync.state');
    expect(history.stdout).toContain('ECONNREFUSED');
    const json = await f.run(['history', '--json'], { env, timeoutMs: 100_000 });
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { resources: { address: string; problem?: string }[] };
    expect(doc.resources[0]!.address).toBe('sync.state');
    expect(doc.resources[0]!.problem).toContain('ECONNREFUSED');

    const verify = await f.run(['verify'], { env, timeoutMs: 100_000 });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain('FAIL sync.state');
    expect(verify.stdout).not.toContain('the next apply pushes');
    expect(verify.stdout).toContain('1 resource with problems; nothing was recorded for repair');
    expect(history.stdout + verify.stdout + history.stderr + verify.stderr).not.toContain('test-secret-key');
  });
});
