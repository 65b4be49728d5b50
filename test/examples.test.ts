// Every spec shipped in examples/ and specs/ validates (all its environments) with the variables it
// needs set to dummy values; the container start script parses, and really restores, runs the
// agent, and pushes once more when the container is stopped.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliPath, ROOT, runPersist, tempDir } from './hardening/helpers.js';

const DUMMY_ENV = {
  CF_ACCOUNT_ID: '0123456789abcdef0123456789abcdef',
  R2_ACCESS_KEY_ID: 'dummy-access-key-id',
  R2_SECRET_ACCESS_KEY: 'dummy-secret-access-key',
  MINIO_ACCESS_KEY: 'dummy-minio-access',
  MINIO_SECRET_KEY: 'dummy-minio-secret',
  LOCAL_S3_ENDPOINT: 'http://127.0.0.1:4568',
  LOCAL_S3_BUCKET: 'persist-local',
  LOCAL_S3_ACCESS_KEY_ID: 'S3RVER',
  LOCAL_S3_SECRET_ACCESS_KEY: 'S3RVER',
};

function yamlFiles(folder: string): string[] {
  return (readdirSync(join(ROOT, folder), { recursive: true }) as string[])
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .map((name) => join(folder, name))
    .sort();
}

const SPECS = [...yamlFiles('examples'), ...yamlFiles('specs')];

describe('shipped specs', () => {
  it('are all found', () => {
    expect(SPECS).toEqual(expect.arrayContaining(['examples/quickstart.yaml', 'examples/r2-s3fs.yaml', 'examples/r2-rclone.yaml', 'examples/r2-goofys.yaml', 'examples/minio.yaml', 'specs/moltbot.yaml']));
  });

  for (const spec of SPECS) {
    it(`${spec} validates`, async () => {
      const result = await runPersist(['validate', '-f', spec, '--json'], { cwd: ROOT, env: DUMMY_ENV });
      const report = JSON.parse(result.stdout) as { valid: boolean; environments: string[]; errors: unknown[] };
      expect(report.errors).toEqual([]);
      expect(report.valid).toBe(true);
      expect(result.code).toBe(0);
    });
  }

  for (const spec of ['examples/r2-s3fs.yaml', 'examples/r2-rclone.yaml', 'examples/r2-goofys.yaml', 'examples/minio.yaml']) {
    it(`${spec} has development and production, each with its own bucket and mount path`, async () => {
      const result = await runPersist(['validate', '-f', spec, '--json'], { cwd: ROOT, env: DUMMY_ENV });
      expect((JSON.parse(result.stdout) as { environments: string[] }).environments).toEqual(['development', 'production']);
      // Isolation is part of validation; the names resolve per environment.
      for (const environment of ['development', 'production']) {
        const status = await runPersist(['status', '-f', spec, '--env', environment, '--json'], { cwd: ROOT, env: { ...DUMMY_ENV, PERSIST_STATE_DIR: tempDir() } });
        const mount = (JSON.parse(status.stdout) as { resources: { address: string; facts: Record<string, unknown> }[] }).resources.find((r) => r.address === 'mount.data');
        expect(mount?.facts.bucket).toMatch(new RegExp(`-${environment}$`));
        expect(mount?.facts.path).toMatch(new RegExp(`-${environment}$`));
      }
    });
  }

  it('an R2 example names every missing variable at once', async () => {
    const result = await runPersist(['validate', '-f', 'examples/r2-s3fs.yaml'], { cwd: ROOT, env: {} });
    expect(result.code).toBe(1);
    for (const name of ['CF_ACCOUNT_ID', 'R2_ACCESS_KEY_ID', 'R2_SECRET_ACCESS_KEY']) expect(result.stderr).toContain(`environment variable ${name} is not set`);
  });
});

describe('examples/start.sh', () => {
  const script = join(ROOT, 'examples', 'start.sh');

  it('passes bash -n', () => {
    expect(() => execFileSync('bash', ['-n', script])).not.toThrow();
  });

  it('restores, runs the agent beside watch, starts a watch that died again, and saves with persist shutdown on SIGTERM', async () => {
    const dir = tempDir();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'persist'), `#!/bin/sh\nexec "${process.execPath}" "${cliPath()}" "$@"\n`);
    chmodSync(join(bin, 'persist'), 0o755);
    // A local bucket that already holds a mirror: boot must restore it before the agent starts.
    writeFileSync(
      join(dir, 'persist.yaml'),
      ['version: 1', 'buckets:', '  data:', '    name: start-test', '    mount: { backend: local, path: ./bucket }', 'syncs:', '  state: { from: ./state, to: state }', 'environments:', '  production: {}', ''].join('\n'),
    );
    const seed = tempDir();
    writeFileSync(join(seed, 'persist.yaml'), readFileSync(join(dir, 'persist.yaml'), 'utf8'));
    mkdirSync(join(seed, 'state'));
    writeFileSync(join(seed, 'state', 'restored.txt'), 'from the bucket\n');
    const env = { PATH: `${bin}:${process.env.PATH}`, ENVIRONMENT: 'production', PERSIST_SPEC: join(dir, 'persist.yaml'), PERSIST_STATE_DIR: join(dir, 'persist-state') };
    expect((await runPersist(['apply', '--auto-approve', '-f', join(seed, 'persist.yaml'), '--env', 'production'], { cwd: seed, env })).code).toBe(0);
    execFileSync('cp', ['-a', join(seed, 'bucket'), join(dir, 'bucket')]);

    // The agent: proves the restore happened before it started; writes new state when told to.
    const agent = `test -f ${dir}/state/restored.txt || exit 3; touch ${dir}/agent-started; while [ ! -f ${dir}/go ]; do sleep 0.05; done; echo new > ${dir}/state/written-by-agent.txt; exec sleep 60`;
    const child = spawn('bash', [script, 'sh', '-c', agent], { cwd: dir, env: { ...env, PERSIST_WATCH_INTERVAL: '1h' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const waitFor = async (done: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`${what} did not happen:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    // watch's first round finds nothing to do (boot converged).
    await waitFor(() => existsSync(join(dir, 'agent-started')) && output.includes('round 0] no changes'), 'the agent start and the first watch round');
    // The watch dies (the OOM killer, say): start.sh starts another one, which holds the lease again.
    const [watchPid, ...others] = watchPids(env.PERSIST_STATE_DIR);
    expect(others).toEqual([]);
    process.kill(watchPid!, 'SIGKILL');
    await waitFor(() => output.includes('start.sh: persist watch exited (status 137); restarting it in 5 s'), 'start.sh to see the watch die');
    await waitFor(() => (output.match(/round 0\] no changes/g) ?? []).length === 2, 'the new watch\'s first round');
    const [restarted] = watchPids(env.PERSIST_STATE_DIR);
    expect(restarted).toBeDefined();
    expect(restarted).not.toBe(watchPid);
    expect(JSON.parse(readFileSync(join(dir, 'bucket', '.persist-lease.json'), 'utf8')).machine).toBe(readFileSync(join(dir, 'persist-state', 'machine-id'), 'utf8').trim());
    // Only now does the agent write.
    writeFileSync(join(dir, 'go'), '');
    await waitFor(() => existsSync(join(dir, 'state', 'written-by-agent.txt')), 'the agent write');
    expect(existsSync(join(dir, 'bucket', 'state', 'written-by-agent.txt'))).toBe(false);
    child.kill('SIGTERM');
    expect(await exited, output).toBe(0);
    expect(output).toContain('start.sh: persist shutdown (timeout 50s)');
    expect(output).toContain('Shutdown complete in');
    expect(output).toMatch(/\] stopped\n/); // watch logged its clean stop
    expect(readFileSync(join(dir, 'bucket', 'state', 'written-by-agent.txt'), 'utf8')).toBe('new\n');
    expect(readFileSync(join(dir, 'state', 'restored.txt'), 'utf8')).toBe('from the bucket\n');
    // The shutdown released the lease, and no watch is left running.
    expect(output).toContain(`✔ lease: released the lease ${join(dir, 'bucket', '.persist-lease.json')}`);
    expect(existsSync(join(dir, 'bucket', '.persist-lease.json'))).toBe(false);
    expect(watchPids(env.PERSIST_STATE_DIR)).toEqual([]);
  }, 60_000);

  it('does not start the agent when the boot apply fails', async () => {
    const dir = tempDir();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'persist'), `#!/bin/sh\nexec "${process.execPath}" "${cliPath()}" "$@"\n`);
    chmodSync(join(bin, 'persist'), 0o755);
    // A file where the bucket folder belongs: the mount is a conflict.
    writeFileSync(join(dir, 'persist.yaml'), ['version: 1', 'buckets:', '  data:', '    name: start-test', '    mount: { backend: local, path: ./bucket }', 'links:', '  memory: workspace/memory', ''].join('\n'));
    writeFileSync(join(dir, 'bucket'), 'not a folder\n');
    const result = execFileSyncResult('bash', [script, 'sh', '-c', `touch ${dir}/agent-started`], {
      PATH: `${bin}:${process.env.PATH}`,
      ENVIRONMENT: 'default',
      PERSIST_SPEC: join(dir, 'persist.yaml'),
      PERSIST_STATE_DIR: join(dir, 'persist-state'),
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain('not starting the agent on an unrestored workspace');
    expect(existsSync(join(dir, 'agent-started'))).toBe(false);
  });
});

/** Pids of `persist watch` processes running with this state folder. */
function watchPids(stateDir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (argv.includes('watch') && argv.some((arg) => arg.endsWith('persist.js')) && environ.includes(`PERSIST_STATE_DIR=${stateDir}`)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function execFileSyncResult(command: string, args: string[], env: Record<string, string>): { code: number; output: string } {
  try {
    const output = execFileSync(command, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, output };
  } catch (error) {
    const failed = error as { status: number; stdout: string; stderr: string };
    return { code: failed.status, output: `${failed.stdout}${failed.stderr}` };
  }
}

describe('the quickstart tour (README)', () => {
  it('seeds a workspace, saves it, and brings a deleted workspace back', async () => {
    const dir = tempDir();
    const examples = join(dir, 'examples');
    mkdirSync(examples);
    for (const name of ['quickstart.yaml', 'quickstart-seed.sh']) writeFileSync(join(examples, name), readFileSync(join(ROOT, 'examples', name)));
    const env = { PERSIST_STATE_DIR: join(dir, 'state-dir'), HOME: dir };
    const spec = ['-f', 'examples/quickstart.yaml'];
    const seeded = execFileSync('sh', ['examples/quickstart-seed.sh'], { cwd: dir, encoding: 'utf8' });
    expect(seeded).toContain('quickstart-seed: seeded');
    const qs = join(examples, 'quickstart');

    const apply = await runPersist(['apply', ...spec, '--auto-approve'], { cwd: dir, env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/✔ \d+\. ~ link\.notes {2}adopt: adopted 1 file/);
    expect(apply.stdout).toMatch(/✔ \d+\. ~ sync\.state {2}push: copied 1 file/);
    expect(apply.stdout).toMatch(/✔ \d+\. ~ bundle\.agent {2}update: wrote bundles\/repo\.bundle/);
    expect((await runPersist(['plan', ...spec], { cwd: dir, env })).stdout).toContain('No changes. The machine matches the spec.');
    const status = await runPersist(['status', ...spec], { cwd: dir, env });
    expect(status.stdout).toMatch(/^ok {2}bundle\.agent .* age=\d+s {2}refs=1/m);
    expect(status.stdout).toMatch(/^ok {2}sync\.state .* files=1 {2}age=\d+s/m);
    // The second run of the seed script changes nothing.
    expect(execFileSync('sh', ['examples/quickstart-seed.sh'], { cwd: dir, encoding: 'utf8' })).toContain('nothing seeded');

    // The tour: write a note, delete the workspace, apply, see everything back.
    writeFileSync(join(qs, 'workspace', 'notes', 'today.md'), 'remember the milk\n');
    // The state file's content (a database is saved as a snapshot: same rows, its header counter may differ).
    const stateName = readdirSync(join(qs, 'state'))[0]!;
    const contentOf = (path: string) => (stateName.endsWith('.db') ? execFileSync('sqlite3', [path, '.dump'], { encoding: 'utf8' }) : readFileSync(path, 'utf8'));
    const db = contentOf(join(qs, 'state', stateName));
    for (const name of ['workspace', 'repo', 'state']) execFileSync('rm', ['-rf', join(qs, name)]);
    const back = await runPersist(['apply', ...spec, '--auto-approve'], { cwd: dir, env });
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(back.stdout).toContain('Apply complete: 5 applied, 0 failed, 0 skipped.');
    expect(readFileSync(join(qs, 'workspace', 'notes', 'today.md'), 'utf8')).toBe('remember the milk\n');
    expect(readFileSync(join(qs, 'workspace', 'notes', 'welcome.md'), 'utf8')).toContain('The workspace persists');
    expect(execFileSync('git', ['-C', join(qs, 'repo'), 'log', '--format=%s'], { encoding: 'utf8' })).toBe('first commit\n');
    expect(contentOf(join(qs, 'state', stateName))).toEqual(db);
    expect((await runPersist(['plan', ...spec], { cwd: dir, env })).stdout).toContain('No changes.');
  });
});
