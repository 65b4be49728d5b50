// examples/local-s3/: the script starts s3rver on a free port with a bucket and prints the
// variables to export; the shipped s3fs and rclone specs mount it through `persist apply`; Ctrl-C
// stops the server and leaves nothing behind (no env file, no temporary data folder, no process).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { describeE2E, MountSandbox, pidsWithArg } from '../helpers/e2e.js';
import { ROOT, runPersist } from '../hardening/helpers.js';

const SCRIPT = join(ROOT, 'examples', 'local-s3', 'start.mjs');

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
      const server = spawn(process.execPath, [SCRIPT, '--temp', '--vars-file', envFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => server.on('close', resolve));
      try {
        const deadline = Date.now() + 15_000;
        while (!output.includes('Ctrl-C stops the server.')) {
          if (Date.now() > deadline || server.exitCode !== null) throw new Error(`the server did not start:\n${output}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const exportLine = output.split('\n').find((line) => line.startsWith('export '))!;
        expect(readFileSync(envFile, 'utf8')).toContain(exportLine);
        const vars = Object.fromEntries(exportLine.slice('export '.length).split(' ').map((pair) => pair.split('=') as [string, string]));
        expect(vars).toMatchObject({ LOCAL_S3_ENDPOINT: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), LOCAL_S3_BUCKET: 'persist-local', LOCAL_S3_ACCESS_KEY_ID: 'S3RVER', LOCAL_S3_SECRET_ACCESS_KEY: 'S3RVER' });
        const data = /data in (\S+) \(temporary\)/.exec(output)![1]!;

        const env = { ...vars, PERSIST_STATE_DIR: join(dir, 'state-dir'), HOME: dir };
        const apply = await runPersist(['apply', '-f', 'persist.yaml', '--auto-approve'], { cwd: dir, env, timeoutMs: 60_000 });
        expect(apply.code, apply.stdout + apply.stderr).toBe(0);
        expect(apply.stdout).toContain(`mounted persist-local at ${join(dir, `mnt-${backend}`)} with ${backend}`);
        writeFileSync(join(dir, `workspace-${backend}`, 'notes', 'hello.md'), 'through the mount\n');
        const plan = await runPersist(['plan', '-f', 'persist.yaml'], { cwd: dir, env });
        expect(plan.stdout).toContain('No changes.');
        // The note is an object in the server's bucket (rclone uploads it once it is closed and written back).
        const object = join(data, 'persist-local', backend, 'workspace', 'notes', 'hello.md._S3rver_object');
        // s3rver writes its data file while it receives the body: wait for the whole content, not the name.
        const stored = () => (existsSync(object) ? readFileSync(object, 'utf8') : null);
        const until = Date.now() + 20_000;
        while (stored() !== 'through the mount\n' && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 200));
        expect(stored()).toBe('through the mount\n');

        sandbox.unmountAll();
        expect(sandbox.mountsInside()).toEqual([]);
        server.kill('SIGINT');
        expect(await exited, output).toBe(0);
        expect(output).toContain('local-s3: stopped (SIGINT)');
        expect(existsSync(envFile)).toBe(false);
        expect(existsSync(data)).toBe(false);
        expect(pidsWithArg(backend, join(dir, `mnt-${backend}`))).toEqual([]);
        expect(readdirSync(dir).filter((name) => name.endsWith('.env'))).toEqual([]);
      } finally {
        sandbox.unmountAll();
        if (server.exitCode === null) {
          server.kill('SIGINT');
          await exited;
        }
      }
    }, 90_000);
  });
}
