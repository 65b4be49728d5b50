// s3fs extraOptions and rclone extraArgs that persist refuses are refused when the spec is read
// (validate, and plan/apply/status through loadEnvironment), each at the item's file:line:col,
// and again by the driver right before it builds a mount command, with the same rules
// (src/backends/options.ts). Before, only the drivers refused url=, endpoint=, logfile= and every
// rclone flag, and an item joining options with a comma ("ro,url=http://elsewhere") passed both
// checks and overrode persist's own -o url=... on s3fs's command line.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { rclone } from '../../src/backends/rclone.js';
import { s3fs } from '../../src/backends/s3fs.js';
import { SpecError, type SpecProblem } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { testBucket, testContext } from '../backends/fixtures.js';
import { tempDir, writeSpec } from './helpers.js';

type Backend = 's3fs' | 'rclone';
const KEY: Record<Backend, string> = { s3fs: 'extraOptions', rclone: 'extraArgs' };

/** A spec whose one item sits alone on line 12, at column 13. */
function specText(backend: Backend, item: string): string {
  return [
    'version: 1',
    'buckets:',
    '  data:',
    '    name: test-data',
    '    endpoint: http://127.0.0.1:9',
    '    credentials: {accessKeyId: a, secretAccessKey: b}',
    '    mount:',
    `      backend: ${backend}`,
    '      path: ./m',
    '      options:',
    `        ${KEY[backend]}:`,
    `          - ${JSON.stringify(item)}`,
    '',
  ].join('\n');
}

async function validateProblems(backend: Backend, item: string, processEnv: Record<string, string> = {}): Promise<SpecProblem[]> {
  return (await validateSpec({ file: writeSpec(specText(backend, item)), processEnv })).problems;
}

/** What plan, apply and status get: loadEnvironment throws a SpecError (or resolves). */
async function loadProblems(backend: Backend, item: string, processEnv: Record<string, string> = {}): Promise<SpecProblem[]> {
  try {
    await loadEnvironment({ file: writeSpec(specText(backend, item)), processEnv });
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as SpecError).problems;
  }
}

/** The drivers' own check, right before a mount command is built. */
function driverProblems(backend: Backend, item: string) {
  return (backend === 's3fs' ? s3fs : rclone).validateOptions({ [KEY[backend]]: [item] });
}

// [item, a part of the message]
const S3FS_REFUSED: [string, string][] = [
  ['url=http://127.0.0.2:7', '"url" is refused: it is set by persist'],
  ['endpoint=x', '"endpoint" is refused: it is set by persist'],
  ['logfile=/tmp/x', '"logfile" is refused'],
  ['host=http://127.0.0.2:7', '"host" is refused'],
  ['bucket=other', '"bucket" is refused'],
  ['region=eu', '"region" is refused'],
  ['fsname=other', '"fsname" is refused'],
  ['subtype=x', '"subtype" is refused'],
  ['nonempty', '"nonempty" is refused: mounting over a non-empty folder hides its data'],
  ['passwd_file=/tmp/p', 'credentials may not be passed as mount options'],
  ['profile=other', '"profile" is refused: credentials come from'],
  ['ibm_iam_endpoint=http://x', '"ibm_iam_endpoint" is refused'],
  // joined with commas: FUSE splits them, and the last url= wins
  ['ro,url=http://127.0.0.2:7', '"url" is refused'],
  ['nonempty,logfile=/tmp/x', '"nonempty" is refused'],
  ['allow_other,logfile=/tmp/x', '"logfile" is refused'],
  ['ro, url=http://x', '"url" is refused'],
  ['ro,,uid=0', 'an empty option'],
  ['ro,', 'an empty option'],
  // spaces, dashes, capitals, a second -o, FUSE's \ escapes (\165 is u, \075 is =)
  [' url=http://x', '"url" is refused'],
  ['url =http://x', '"url" is refused'],
  ['URL=http://x', '"url" is refused'],
  ['Logfile=/x', '"logfile" is refused'],
  ['-ourl=http://x', 'an s3fs option\'s name is lowercase letters'],
  ['--url=http://x', '"url" is refused'],
  ['ro -o url=http://x', '"ro -o url" is refused: an s3fs option\'s name'],
  ['u\\rl=http://x', '"u\\\\" is refused'],
  ['\\165rl=http://x', 'is refused: an s3fs option\'s name'],
  ['url\\075http://x', '"url\\\\" is refused: an s3fs option\'s name'],
  ['uid=0\\,url=http://x', '"url" is refused'],
];

const S3FS_ACCEPTED = [
  'max_stat_cache_size=1000',
  'multireq_max=5',
  'ro',
  'allow_other,uid=1000,gid=1000,umask=0022',
  'use_cache=/var/cache/s3fs',
  'servicepath=/s3/',
  'dbglevel=info',
  'ahbe_conf=/etc/ahbe.conf',
  'endpointless=1', // not a name persist sets (s3fs itself would refuse it)
];

const RCLONE_REFUSED: [string, string][] = [
  ['--allow-non-empty', '"--allow-non-empty" is refused: mounting over a non-empty folder hides its data'],
  ['--config=/x', '"--config" is refused: it is set by persist'],
  ['--config', '"--config" is refused'],
  ['--devname=x', '"--devname" is refused: it is set by persist'],
  ['--daemon', '"--daemon" is refused'],
  ['--daemon-wait=5s', '"--daemon-wait" is refused'],
  ['--rc', '"--rc" is refused: it is set by persist'],
  ['--rc-addr=0.0.0.0:5572', '"--rc-addr" is refused'],
  ['--rc-no-auth', '"--rc-no-auth" is refused'],
  ['--rc-user=x', '"--rc-user" is refused'],
  ['--log-file=/tmp/x', '"--log-file" is refused'],
  ['--cache-dir=/tmp/x', '"--cache-dir" is refused: it is set by persist; use the cacheDir option'],
  ['--vfs-cache-mode=off', '"--vfs-cache-mode" is refused: it is set by persist; use the cacheMode option'],
  ['--s3-endpoint=http://127.0.0.2:7', '"--s3-endpoint" is refused'],
  ['--s3-provider=Other', '"--s3-provider" is refused'],
  ['--s3-env-auth', '"--s3-env-auth" is refused: credentials come from'],
  ['--s3-secret-access-key=abc', 'credentials may not be passed as mount options'],
  ['-o', '"-o" is refused: persist passes no FUSE options'],
  ['-oallow_other', '"-o" is refused'],
  ['-vo', '"-o" is refused'],
  ['--option=nonempty', '"--option" is refused'],
  ['--fuse-flag=x', '"--fuse-flag" is refused'],
  // spaces, capitals, underscores, one dash, several words in one item
  [' --config=/x', '"--config" is refused'],
  ['--config =/x', '"--config" is refused'],
  ['--Config=/x', '"--config" is refused'],
  ['--LOG-FILE=/x', '"--log-file" is refused'],
  ['--log_file=/x', '"--log-file" is refused'],
  ['-config=/x', '"--config" is refused'],
  ['-v --config=/x', '"--config" is refused'],
  ['--transfers=8 --rc', '"--rc" is refused'],
];

const RCLONE_ACCEPTED = [
  '--transfers=8',
  '--exclude=--config', // a value, not a flag
  '-v',
  '-vv',
  '--vfs-read-ahead=16M',
  '--buffer-size',
  '16M',
  '--read-only',
  '--no-modtime',
  '--log-level=DEBUG',
  '--vfs-cache-max-size=1G',
  '--allow-other',
  '--dir-perms=0777',
];

const cases: [Backend, string, string][] = [
  ...S3FS_REFUSED.map(([item, message]) => ['s3fs', item, message] as [Backend, string, string]),
  ...RCLONE_REFUSED.map(([item, message]) => ['rclone', item, message] as [Backend, string, string]),
];

describe('refused extraOptions (s3fs) and extraArgs (rclone)', () => {
  it.each(cases)('%s %j: validate refuses it at the item', async (backend, item, message) => {
    const problems = await validateProblems(backend, item);
    expect(problems, JSON.stringify(problems)).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 12, column: 13, path: `buckets.data.mount.options.${KEY[backend]}[0]` });
    expect(problems[0]?.message).toContain(message);
  });

  it.each(cases)('%s %j: plan, apply and status refuse it (loadEnvironment), and so does the driver, with the same message', async (backend, item) => {
    const [problem, ...more] = await loadProblems(backend, item);
    expect(more).toEqual([]);
    expect(problem).toMatchObject({ line: 12, column: 13, path: `buckets.data.mount.options.${KEY[backend]}[0]` });
    const driver = driverProblems(backend, item);
    expect(driver).toEqual([{ key: KEY[backend], index: 0, message: problem?.message }]);
  });

  it.each([
    ...S3FS_ACCEPTED.map((item) => ['s3fs', item] as [Backend, string]),
    ...RCLONE_ACCEPTED.map((item) => ['rclone', item] as [Backend, string]),
  ])('%s %j is accepted by validate, loadEnvironment and the driver', async (backend, item) => {
    expect(await validateProblems(backend, item)).toEqual([]);
    expect(await loadProblems(backend, item)).toEqual([]);
    expect(driverProblems(backend, item)).toEqual([]);
  });

  it('checks an item that comes from a variable once it is interpolated', async () => {
    const text = specText('s3fs', '${env:S3FS_EXTRA}');
    const processEnv = { S3FS_EXTRA: 'ro,url=http://127.0.0.2:7' };
    for (const problems of [
      (await validateSpec({ file: writeSpec(text), processEnv })).problems,
      await loadProblems('s3fs', '${env:S3FS_EXTRA}', processEnv),
    ]) {
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ line: 12, column: 13, path: 'buckets.data.mount.options.extraOptions[0]' });
      expect(problems[0]?.message).toContain('"url" is refused');
    }
  });

  it('never shows the item itself, which may hold a secret', async () => {
    for (const [backend, item] of [
      ['s3fs', 'url=http://x,secret=hunter2-value'],
      ['s3fs', 'ro,url=https://user:hunter2-value@elsewhere'],
      ['s3fs', 'url\\075https://user:hunter2-value@elsewhere'],
      ['s3fs', 'ro -o url=https://user:hunter2-value@elsewhere'],
      ['rclone', '--s3-endpoint=https://user:hunter2-value@elsewhere'],
      ['rclone', '--password-command=echo hunter2-value'],
    ] as [Backend, string][]) {
      const problems = await validateProblems(backend, item);
      expect(problems).toHaveLength(1);
      expect(JSON.stringify(problems)).not.toContain('hunter2');
    }
  });
});

describe('the mount command is never built from a refused item', () => {
  it('s3fs: a comma-joined url= is refused before anything is written', async () => {
    const { ctx, written } = testContext();
    const bucket = testBucket('s3fs', 'other', { options: { extraOptions: ['ro,url=http://127.0.0.2:7'] } });
    await expect(s3fs.mountCommand(bucket, ctx)).rejects.toThrow('invalid s3fs options: extraOptions[0]: "url" is refused: it is set by persist');
    expect(written).toEqual([]);
  });

  it('rclone: --config=... is refused before anything is run or written', async () => {
    const { ctx, runs, written } = testContext();
    const bucket = testBucket('rclone', 'other', { options: { extraArgs: ['--transfers=8', '--config=/tmp/other.conf'] } });
    await expect(rclone.mountCommand(bucket, ctx)).rejects.toThrow('invalid rclone options: extraArgs[1]: "--config" is refused');
    expect(runs).toEqual([]);
    expect(written).toEqual([]);
  });
});

describe('the built CLI', () => {
  const BIN = join(resolve(import.meta.dirname, '../..'), 'bin', 'persist.js');
  async function persist(args: string[], cwd: string) {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
        cwd,
        env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', PERSIST_STATE_DIR: join(cwd, 'state') },
        timeout: 30_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it.each([['validate'], ['plan'], ['apply', '--auto-approve'], ['status']])('%s refuses a comma-joined url= with file:line:col, exit 1, no stack trace', async (...args) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'persist.yaml'), specText('s3fs', 'ro,url=http://127.0.0.2:7'));
    const result = await persist(args, dir);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toContain('persist.yaml:12:13: buckets.data.mount.options.extraOptions[0]: "url" is refused: it is set by persist');
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.stdout + result.stderr).not.toContain('s3fs test-data');
  });

  it('validate refuses rclone --config=... the same way', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'persist.yaml'), specText('rclone', '--config=/tmp/other.conf'));
    const result = await persist(['validate'], dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('persist.yaml:12:13: buckets.data.mount.options.extraArgs[0]: "--config" is refused');
  });
});
