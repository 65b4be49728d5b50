// Credentials never leak: every command runs with distinctive key values in the environment used
// by the spec, and the values must appear in no stdout or stderr, no saved plan, no file under the
// state folder that others could read, and no command line of any process (polled from
// /proc/*/cmdline while each command runs). The mount path runs twice: once with recording fakes of
// s3fs and rclone first on PATH (their argv, environment names and the passwd file's mode), and
// once with the real binaries against a loopback port where nothing listens.
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missingPrerequisites } from '../helpers/e2e.js';
import { runPersist, tempDir, type RunResult } from './helpers.js';

const KEY_ID = 'AKIA-PERSIST-TEST-ID-7f3a';
const SECRET = 'SECRET-PERSIST-TEST-9c1e';
const SECRET_ENV = { TEST_ACCESS_KEY_ID: KEY_ID, TEST_SECRET_ACCESS_KEY: SECRET };

function leaks(text: string): string[] {
  return [KEY_ID, SECRET].filter((value) => text.includes(value));
}

/** Processes (other than this one) whose command line holds a secret, found by scanning /proc. */
class CmdlineWatch {
  readonly offenders = new Set<string>();
  /** Command lines seen that contain `marker`: proof that the watch saw the processes it should. */
  readonly seen = new Set<string>();
  constructor(private readonly marker?: string) {}

  scan = (): void => {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      let argv: string;
      try {
        argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        continue; // exited meanwhile
      }
      if (leaks(argv).length > 0) this.offenders.add(`${name}: ${argv}`);
      if (this.marker && argv.includes(this.marker)) this.seen.add(argv);
    }
  };
}

/** Files under `dir` (recursively) that hold a secret, with their modes. */
function filesWithSecrets(dir: string): { path: string; mode: number }[] {
  const found: { path: string; mode: number }[] = [];
  const walk = (folder: string): void => {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(folder, name);
      const info = lstatSync(path);
      if (info.isDirectory()) walk(path);
      else if (info.isFile() && leaks(readFileSync(path, 'utf8')).length > 0) found.push({ path, mode: info.mode & 0o777 });
    }
  };
  walk(dir);
  return found;
}

function expectNoLeak(result: RunResult, what: string): void {
  expect(leaks(result.stdout), `${what}: stdout`).toEqual([]);
  expect(leaks(result.stderr), `${what}: stderr`).toEqual([]);
}

function spec(backend: string, endpoint: string): string {
  return `version: 1
workspace: ./ws
buckets:
  data:
    name: secret-test
    endpoint: ${endpoint}
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
syncs:
  state: { from: ./state-folder, to: state }
files:
  creds: { from: creds.env, to: ./ws/.creds.env }
`;
}

function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 9));
    });
  });
}

describe('secrets on the local backend', () => {
  it('appear in no output, saved plan, state file or command line of any command', async () => {
    const dir = tempDir();
    const stateDir = join(dir, 'state');
    writeFileSync(join(dir, 'persist.yaml'), spec('local', 'http://127.0.0.1:9'));
    mkdirSync(join(dir, 'mnt'), { recursive: true });
    writeFileSync(join(dir, 'mnt', 'creds.env'), 'TOKEN=not-a-test-secret\n');
    mkdirSync(join(dir, 'state-folder'), { recursive: true });
    writeFileSync(join(dir, 'state-folder', 'db.sqlite'), 'data');
    const env = { ...SECRET_ENV, PERSIST_STATE_DIR: stateDir, AWSACCESSKEYID: KEY_ID };
    const watch = new CmdlineWatch();
    const commands: string[][] = [
      ['validate'],
      ['validate', '--json'],
      ['validate', '--env', 'default'],
      ['plan'],
      ['plan', '--json'],
      ['plan', '--out', 'saved.plan'],
      ['--debug', 'plan', '--detailed-exitcode'],
      ['apply', 'saved.plan', '--json'],
      ['status'],
      ['status', '--json'],
      ['doctor'],
      ['doctor', '--json'],
      ['plan', '--json', '--detailed-exitcode'],
      // Failing runs, with and without a stack trace.
      ['plan', '--target', 'mount.nothing'],
      ['--debug', 'plan', '--target', 'mount.nothing'],
      ['--debug', 'apply', '--auto-approve', '--lock-timeout', 'soon'],
      ['apply', 'saved.plan'],
    ];
    const codes: (number | null)[] = [];
    for (const args of commands) {
      const result = await runPersist(args, { cwd: dir, env, whileRunning: watch.scan });
      codes.push(result.code);
      expectNoLeak(result, args.join(' '));
    }
    // The runs did what they say (so the output checked above is the real output).
    expect(codes).toEqual([0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    expect(readFileSync(join(dir, 'ws', '.creds.env'), 'utf8')).toBe('TOKEN=not-a-test-secret\n');
    expect(leaks(readFileSync(join(dir, 'saved.plan'), 'utf8'))).toEqual([]);
    expect(filesWithSecrets(stateDir)).toEqual([]);
    expect([...watch.offenders]).toEqual([]);
  });

  it('a credential that fails validation is shown as (sensitive)', async () => {
    const dir = tempDir();
    // A key id written into the spec itself with a bad type of value next to it.
    writeFileSync(
      join(dir, 'persist.yaml'),
      spec('local', 'http://127.0.0.1:9').replace('secretAccessKey: ${env:TEST_SECRET_ACCESS_KEY}', `secretAccessKey: ["${SECRET}"]`),
    );
    for (const args of [['validate'], ['validate', '--json'], ['plan'], ['doctor', '--json']]) {
      const result = await runPersist(args, { cwd: dir, env: { ...SECRET_ENV, PERSIST_STATE_DIR: join(dir, 'state') } });
      expect(result.code).toBe(1);
      expect(`${result.stdout}${result.stderr}`).toMatch(/secretAccessKey/);
      expectNoLeak(result, args.join(' '));
    }
  });
});

const FAKE_S3FS = `#!/bin/sh
# Records its argv (one per line), its environment's names and the passwd file's mode, then fails.
{ echo "argv:"; for a in "$@"; do echo "$a"; done; echo "env:"; env | cut -d= -f1; } >> "$FAKE_RECORD"
for a in "$@"; do case "$a" in passwd_file=*) stat -c 'passwd-mode:%a' "\${a#passwd_file=}" >> "$FAKE_RECORD";; esac; done
echo "fake s3fs: cannot mount (test)" >&2
exit 1
`;

const FAKE_RCLONE = `#!/bin/sh
{ echo "argv:"; for a in "$@"; do echo "$a"; done; echo "env:"; env | cut -d= -f1; } >> "$FAKE_RECORD"
case " $* " in *" lsf "*) exit 0;; esac
echo "Fatal error: fake rclone cannot mount (test)"
exit 1
`;

describe('secrets on the way to a mount daemon (recording fakes of s3fs and rclone)', () => {
  for (const backend of ['s3fs', 'rclone'] as const) {
    it(`${backend}: keys go through a 0600 file or the environment, never argv, and nothing is left behind`, async () => {
      const dir = tempDir();
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, backend), backend === 's3fs' ? FAKE_S3FS : FAKE_RCLONE);
      chmodSync(join(bin, backend), 0o755);
      const record = join(dir, 'record.txt');
      const stateDir = join(dir, 'state');
      writeFileSync(join(dir, 'persist.yaml'), spec(backend, 'http://127.0.0.1:9'));
      // Keys s3fs would prefer over its passwd file: persist must not pass them on.
      const env = { ...SECRET_ENV, PERSIST_STATE_DIR: stateDir, FAKE_RECORD: record, PATH: `${bin}:${process.env.PATH}`, AWSACCESSKEYID: 'ambient-key' };
      const watch = new CmdlineWatch();
      for (const args of [['apply', '--auto-approve'], ['--debug', 'apply', '--auto-approve', '--json'], ['doctor'], ['status', '--json']]) {
        const result = await runPersist(args, { cwd: dir, env, whileRunning: watch.scan, timeoutMs: 45_000 });
        expectNoLeak(result, `${backend} ${args.join(' ')}`);
        if (args.includes('apply')) {
          expect(result.code).toBe(1);
          expect(`${result.stdout}`).toMatch(new RegExp(`mounting secret-test at .* with ${backend} failed`));
          expect(result.stdout).toContain('cannot mount (test)');
        }
      }
      const recorded = readFileSync(record, 'utf8');
      const invocations = recorded.split('argv:\n').slice(1).map((block) => {
        const [argv = '', rest = ''] = block.split('env:\n');
        return { argv: argv.split('\n').filter(Boolean), env: rest.split('\n').filter((line) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(line)) };
      });
      expect(invocations.length).toBeGreaterThanOrEqual(2); // one per apply (rclone: a check and a mount each)
      for (const { argv } of invocations) expect(leaks(argv.join(' ')), argv.join(' ')).toEqual([]);
      if (backend === 's3fs') {
        expect(invocations[0]!.argv.slice(0, 2)).toEqual(['secret-test', join(dir, 'mnt')]);
        expect(recorded).toContain('passwd-mode:600');
        for (const { env: names } of invocations) expect(names).not.toContain('AWSACCESSKEYID');
      } else {
        // The keys go in a 0600 rclone.conf of the bucket's runtime folder (a stable cache folder
        // name needs a config file, see docs/backends.md), named by --config; removed with the failed mount.
        const mount = invocations.find(({ argv }) => argv.includes('mount'));
        expect(mount, recorded).toBeDefined();
        expect(mount!.argv[0]).toBe('--config');
        expect(mount!.argv[1]).toMatch(/\/mounts\/secret-test-[0-9a-f]+\/rclone\.conf$/);
      }
      // The failed mount took its passwd file with it; what is left holds no secret.
      expect(filesWithSecrets(stateDir)).toEqual([]);
      expect([...watch.offenders]).toEqual([]);
      // The mount point persist created for the attempt is gone again; nothing is mounted.
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(dir, 'mnt'));
    });
  }
});

const missing = missingPrerequisites(['s3fs', 'rclone']);
describe.skipIf(missing.length > 0)(`secrets with the real s3fs and rclone and a dead endpoint${missing.length ? ` [skipped: ${missing.join('; ')}]` : ''}`, () => {
  it('a failing mount leaks nothing while the daemons run', async () => {
    const port = await unusedPort();
    const run = async (backend: 's3fs' | 'rclone') => {
      const dir = tempDir();
      const stateDir = join(dir, 'state');
      writeFileSync(join(dir, 'persist.yaml'), spec(backend, `http://127.0.0.1:${port}`));
      const watch = new CmdlineWatch(join(dir, 'mnt'));
      const result = await runPersist(['--debug', 'apply', '--auto-approve'], {
        cwd: dir,
        env: { ...SECRET_ENV, PERSIST_STATE_DIR: stateDir },
        whileRunning: watch.scan,
        timeoutMs: 50_000,
      });
      return { backend, dir, stateDir, watch, result };
    };
    for (const { backend, dir, stateDir, watch, result } of await Promise.all([run('s3fs'), run('rclone')])) {
      expect(result.code, result.stdout).toBe(1);
      expect(result.stdout).toMatch(new RegExp(`mounting secret-test at .* with ${backend} failed`));
      expectNoLeak(result, backend);
      expect([...watch.offenders]).toEqual([]);
      // Every file left in the state folder that holds a key is private to its owner.
      for (const file of filesWithSecrets(stateDir)) expect(file.mode & 0o077, file.path).toBe(0);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(dir, 'mnt'));
      // The watch saw the s3fs daemon itself (it lives for the whole probe), so it really looked.
      if (backend === 's3fs') expect([...watch.seen].some((argv) => argv.startsWith('s3fs '))).toBe(true);
    }
  });
});
