// examples/local-s3/: the script starts s3rver on a free port with a bucket and prints the
// variables to export; the shipped s3fs and rclone specs mount it through `persist apply`, the API
// spec reaches it with no mount; Ctrl-C stops the server and leaves nothing behind (no env file, no
// temporary data folder, no process).
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { describeE2E, MountSandbox, pidsWithArg } from '../helpers/e2e.js';
import { ROOT, runPersist } from '../hardening/helpers.js';
import { autoTempDir } from '../helpers/temp.js';

const SCRIPT = join(ROOT, 'examples', 'local-s3', 'start.mjs');

interface LocalS3 {
  server: ChildProcess;
  /** Everything the script printed so far. */
  output: () => string;
  exited: Promise<number | null>;
  /** The variables it printed to export. */
  vars: Record<string, string>;
  /** Its temporary data folder. */
  data: string;
}

/** `npm run local-s3 -- --temp`, with its variables written to `envFile`; resolves once it serves. */
async function startLocalS3(envFile: string): Promise<LocalS3> {
  const server = spawn(process.execPath, [SCRIPT, '--temp', '--vars-file', envFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  server.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => server.on('close', resolve));
  const deadline = Date.now() + 15_000;
  while (!output.includes('Ctrl-C stops the server.')) {
    if (Date.now() > deadline || server.exitCode !== null) {
      server.kill('SIGINT');
      throw new Error(`the server did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const exportLine = output.split('\n').find((line) => line.startsWith('export '))!;
  expect(readFileSync(envFile, 'utf8')).toContain(exportLine);
  const vars = Object.fromEntries(exportLine.slice('export '.length).split(' ').map((pair) => pair.split('=') as [string, string]));
  expect(vars).toMatchObject({ LOCAL_S3_ENDPOINT: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), LOCAL_S3_BUCKET: 'persist-local', LOCAL_S3_ACCESS_KEY_ID: 'S3RVER', LOCAL_S3_SECRET_ACCESS_KEY: 'S3RVER' });
  const data = /data in (\S+) \(temporary\)/.exec(output)![1]!;
  return { server, output: () => output, exited, vars, data };
}

/** Ctrl-C: the server stops and removes its variables file and its temporary data. */
async function stopLocalS3(s3: LocalS3, envFile: string): Promise<void> {
  s3.server.kill('SIGINT');
  expect(await s3.exited, s3.output()).toBe(0);
  expect(s3.output()).toContain('local-s3: stopped (SIGINT)');
  expect(existsSync(envFile)).toBe(false);
  expect(existsSync(s3.data)).toBe(false);
}

describe('examples/local-s3 through the S3 API (no mount)', () => {
  it('api.yaml saves a folder under the prefix; a new container restores it; nothing is mounted', async () => {
    const dir = autoTempDir('persist-local-s3-api-');
    copyFileSync(join(ROOT, 'examples', 'local-s3', 'api.yaml'), join(dir, 'persist.yaml'));
    const envFile = join(dir, 'local-s3.env');
    const s3 = await startLocalS3(envFile);
    try {
      mkdirSync(join(dir, 'state-api'));
      writeFileSync(join(dir, 'state-api', 'notes.md'), 'through the API\n');
      const env = { ...s3.vars, PERSIST_STATE_DIR: join(dir, 'state-a'), HOME: dir };
      const apply = await runPersist(['apply', '-f', 'persist.yaml', '--auto-approve'], { cwd: dir, env, timeoutMs: 60_000 });
      expect(apply.code, apply.stdout + apply.stderr).toBe(0);
      expect((await runPersist(['plan', '-f', 'persist.yaml'], { cwd: dir, env })).stdout).toContain('No changes.');
      // The object is in the server's bucket, under the spec's prefix.
      expect(readFileSync(join(s3.data, 'persist-local', 'api', 'state', 'notes.md._S3rver_object'), 'utf8')).toBe('through the API\n');

      // A new container (its own state folder) on the same machine id restores the folder.
      mkdirSync(join(dir, 'state-b'));
      copyFileSync(join(dir, 'state-a', 'machine-id'), join(dir, 'state-b', 'machine-id'));
      const again = join(dir, 'again');
      mkdirSync(again);
      writeFileSync(join(again, 'persist.yaml'), readFileSync(join(dir, 'persist.yaml')));
      const restore = await runPersist(['apply', '-f', 'persist.yaml', '--auto-approve'], { cwd: again, env: { ...env, PERSIST_STATE_DIR: join(dir, 'state-b') }, timeoutMs: 60_000 });
      expect(restore.code, restore.stdout + restore.stderr).toBe(0);
      expect(readFileSync(join(again, 'state-api', 'notes.md'), 'utf8')).toBe('through the API\n');
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    } finally {
      if (s3.server.exitCode === null) await stopLocalS3(s3, envFile);
    }
  }, 90_000);
});

for (const backend of ['s3fs', 'rclone'] as const) {
  describeE2E(`examples/local-s3 with ${backend}`, [backend], () => {
    const sandbox = new MountSandbox();
    afterEach(async () => {
      await sandbox.cleanup();
    });

    it(`starts the server, persist apply mounts it with ${backend}, Ctrl-C stops it and leaves nothing`, async () => {
      const dir = await sandbox.tempDir('persist-local-s3-test-');
      copyFileSync(join(ROOT, 'examples', 'local-s3', `${backend}.yaml`), join(dir, 'persist.yaml'));
      const envFile = join(dir, 'local-s3.env');
      const s3 = await startLocalS3(envFile);
      try {
        const env = { ...s3.vars, PERSIST_STATE_DIR: join(dir, 'state-dir'), HOME: dir };
        const apply = await runPersist(['apply', '-f', 'persist.yaml', '--auto-approve'], { cwd: dir, env, timeoutMs: 60_000 });
        expect(apply.code, apply.stdout + apply.stderr).toBe(0);
        expect(apply.stdout).toContain(`mounted persist-local at ${join(dir, `mnt-${backend}`)} with ${backend}`);
        writeFileSync(join(dir, `workspace-${backend}`, 'notes', 'hello.md'), 'through the mount\n');
        const plan = await runPersist(['plan', '-f', 'persist.yaml'], { cwd: dir, env });
        expect(plan.stdout).toContain('No changes.');
        // The note is an object in the server's bucket (rclone uploads it once it is closed and written back).
        const object = join(s3.data, 'persist-local', backend, 'workspace', 'notes', 'hello.md._S3rver_object');
        // s3rver writes its data file while it receives the body: wait for the whole content, not the name.
        const stored = () => (existsSync(object) ? readFileSync(object, 'utf8') : null);
        const until = Date.now() + 20_000;
        while (stored() !== 'through the mount\n' && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
        expect(stored()).toBe('through the mount\n');

        sandbox.unmountAll();
        expect(sandbox.mountsInside()).toEqual([]);
        await stopLocalS3(s3, envFile);
        expect(pidsWithArg(backend, join(dir, `mnt-${backend}`))).toEqual([]);
        expect(readdirSync(dir).filter((name) => name.endsWith('.env'))).toEqual([]);
      } finally {
        sandbox.unmountAll();
        if (s3.server.exitCode === null) {
          s3.server.kill('SIGINT');
          await s3.exited;
        }
      }
    }, 90_000);
  });
}
