// Buckets filled by other tools (rclone, goofys, the R2 dashboard, `aws s3 cp`) hold keys such as
// `secrets/app.env` with no `secrets/` directory object. s3fs with `notsup_compat_dir` cannot see
// such folders, so a backup there looks absent and could be written over: persist must see it.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeE2E, MountSandbox } from '../helpers/e2e.js';
import { startS3Server, type S3TestServer } from '../helpers/s3server.js';
import { bucketYaml, Machine } from './flow-helpers.js';

describeE2E('s3fs sees folders that have no directory object', ['s3fs'], () => {
  let server: S3TestServer;
  let sandbox: MountSandbox;

  beforeAll(async () => {
    server = await startS3Server(['markerless']);
    sandbox = new MountSandbox();
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('restores a file stored under a folder without a directory object', { timeout: 60_000 }, async () => {
    const content = Buffer.from('TOKEN=written-by-another-tool\n');
    await server.putObject('markerless', 'deep/secrets/app.env', content);
    const machine = new Machine(await sandbox.tempDir('persist-markerless-'));
    await writeFile(
      machine.spec,
      ['version: 1', 'workspace: ./ws', 'buckets:', '  data:', bucketYaml(server, 's3fs', 'markerless', './mnt', '    '), 'files:', '  app:', '    from: deep/secrets/app.env', '    to: ./ws/app.env', '    mode: "0600"', ''].join('\n'),
    );
    const applied = await machine.persist(['apply', '--auto-approve']);
    expect(applied.code, applied.output).toBe(0);
    expect(await readFile(join(machine.ws, 'app.env'))).toEqual(content);
    expect((await stat(join(machine.ws, 'app.env'))).mode & 0o777).toBe(0o600);
  });
});
