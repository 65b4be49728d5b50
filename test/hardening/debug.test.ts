// `--debug`: the Host calls a command makes are logged on stderr (`persist debug: ...`), stdout is
// the same as without it, and credentials never show, neither on a plan nor on the way to a daemon.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPersist, tempDir } from './helpers.js';

const KEY_ID = 'AKIA-PERSIST-DEBUG-ID-51d0';
const SECRET = 'SECRET-PERSIST-DEBUG-83b2';
const SECRET_ENV = { TEST_ACCESS_KEY_ID: KEY_ID, TEST_SECRET_ACCESS_KEY: SECRET };
const DEBUG_LINE = /^persist debug: \w+( .*)? \(\d+(\.\d)? (ms|s)\) -> .+$/;

function spec(backend: string): string {
  return `version: 1
workspace: ./ws
buckets:
  data:
    name: debug-test
    endpoint: http://127.0.0.1:9
    region: us-east-1
    provider: other
    credentials:
      accessKeyId: \${env:TEST_ACCESS_KEY_ID}
      secretAccessKey: \${env:TEST_SECRET_ACCESS_KEY}
    mount:
      backend: ${backend}
      path: ./mnt
links:
  memory: workspace/memory
`;
}

function debugLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('persist debug: '));
}

describe('--debug', () => {
  it('logs the Host calls of a plan on stderr, leaves stdout as it is, and shows no credential', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'persist.yaml'), spec('local'));
    mkdirSync(join(dir, 'mnt', 'workspace', 'memory'), { recursive: true });
    const env = { ...SECRET_ENV, PERSIST_STATE_DIR: join(dir, 'state') };
    const plain = await runPersist(['plan'], { cwd: dir, env });
    const debug = await runPersist(['--debug', 'plan'], { cwd: dir, env });
    expect(plain.code).toBe(0);
    expect(debug.code).toBe(0);
    expect(plain.stderr).toBe('');
    expect(debug.stdout).toBe(plain.stdout);
    const lines = debugLines(debug.stderr);
    expect(lines.length).toBeGreaterThan(3);
    // Every line of stderr is a debug line, in one format.
    expect(debug.stderr.trimEnd().split('\n')).toEqual(lines);
    for (const line of lines) expect(line).toMatch(DEBUG_LINE);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^persist debug: readFileNow ${join(dir, 'persist.yaml')} \\(.*\\) -> \\d+ B$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^persist debug: mounts \(.*\) -> \d+ mounts?$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^persist debug: lstat ${join(dir, 'ws', 'memory')} \\(.*\\) -> missing$`)));
    expect(debug.stderr).not.toContain(KEY_ID);
    expect(debug.stderr).not.toContain(SECRET);
    expect(debug.stdout).not.toContain(SECRET);
  });

  it('logs the passwd file and the daemon command of a mount, never the keys in them', async () => {
    const dir = tempDir();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // A stand-in for s3fs that fails at once (its environment carries the keys).
    writeFileSync(join(bin, 's3fs'), '#!/bin/sh\necho "fake s3fs: cannot mount (test)" >&2\nexit 1\n');
    chmodSync(join(bin, 's3fs'), 0o755);
    writeFileSync(join(dir, 'persist.yaml'), spec('s3fs'));
    const env = { ...SECRET_ENV, PERSIST_STATE_DIR: join(dir, 'state'), PATH: `${bin}:${process.env.PATH}` };
    const result = await runPersist(['--debug', 'apply', '--auto-approve'], { cwd: dir, env, timeoutMs: 45_000 });
    expect(result.code).toBe(1);
    const lines = debugLines(result.stderr);
    for (const line of lines) expect(line).toMatch(DEBUG_LINE);
    expect(lines).toContainEqual(expect.stringMatching(/^persist debug: writeFile \S+ \(\d+ B mode 0600\) \(.*\) -> ok$/));
    expect(lines).toContainEqual(expect.stringMatching(/^persist debug: run s3fs debug-test .*\[own environment of \d+ variables\].* -> exit 1, /));
    expect(lines).toContainEqual(expect.stringMatching(/^persist debug: writeFile \S+apply\.lock \(.*exclusive\) \(.*\) -> ok$/));
    expect(`${result.stdout}${result.stderr}`).not.toContain(KEY_ID);
    expect(`${result.stdout}${result.stderr}`).not.toContain(SECRET);
  });
});
