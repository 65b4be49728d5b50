import { describe, expect, it } from 'vitest';
import { goofys } from '../../src/backends/goofys.js';
import { local } from '../../src/backends/local.js';
import { configFile, pidFile, rclone, rcPortFile } from '../../src/backends/rclone.js';
import { BACKEND_NAMES, backendOwning, backends, getBackend } from '../../src/backends/registry.js';
import { s3fs } from '../../src/backends/s3fs.js';
import { parseMountinfo } from '../../src/host/mountinfo.js';
import type { Provider } from '../../src/spec/types.js';
import { ACCESS_KEY, fuseOptions, SECRET_KEY, testBucket, testContext } from './fixtures.js';

const PROVIDERS: Provider[] = ['r2', 'aws', 'other'];

describe('registry', () => {
  it('has a driver for every backend name, under its own name', () => {
    for (const name of BACKEND_NAMES) expect(getBackend(name).name).toBe(name);
    expect(Object.keys(backends).sort()).toEqual([...BACKEND_NAMES].sort());
    expect(backends.local.fuse).toBe(false);
    expect(backends.s3fs.fuse && backends.rclone.fuse && backends.goofys.fuse).toBe(true);
  });
});

describe('s3fs mount command', () => {
  for (const provider of PROVIDERS) {
    it(`mounts a ${provider} bucket with the identifying and safe options`, async () => {
      const bucket = testBucket('s3fs', provider);
      const { ctx } = testContext();
      const command = await s3fs.mountCommand(bucket, ctx);
      expect(command.command).toBe('s3fs');
      expect(command.args.slice(0, 2)).toEqual(['moltbot-data-dev', '/data/moltbot dev']);
      expect(fuseOptions(command.args)).toEqual([
        'passwd_file=/state/mounts/moltbot-data-dev-abc/passwd-s3fs',
        `url=${bucket.endpoint}`,
        `endpoint=${bucket.region}`,
        'use_path_request_style',
        'nomixupload',
        'enable_noobj_cache',
        'stat_cache_expire=60',
        'fsname=moltbot-data-dev',
        'subtype=s3fs',
        'logfile=/state/mounts/moltbot-data-dev-abc/s3fs.log',
      ]);
      expect(command.files).toEqual([
        { path: '/state/mounts/moltbot-data-dev-abc/passwd-s3fs', content: `${ACCESS_KEY}:${SECRET_KEY}\n`, mode: 0o600 },
      ]);
      expect(command.logFile).toBe('/state/mounts/moltbot-data-dev-abc/s3fs.log');
      expect(JSON.stringify(command.args)).not.toMatch(new RegExp(`${ACCESS_KEY}|${SECRET_KEY}`));
      expect(JSON.stringify(command.env)).not.toMatch(new RegExp(`${ACCESS_KEY}|${SECRET_KEY}`));
    });
  }

  it('drops path-style requests when the bucket asks for virtual hosts', async () => {
    const command = await s3fs.mountCommand(testBucket('s3fs', 'aws', { pathStyle: false }), testContext().ctx);
    expect(fuseOptions(command.args)).not.toContain('use_path_request_style');
  });

  it('applies each option', async () => {
    const bucket = testBucket('s3fs', 'r2', {
      options: { statCacheExpire: 5, enableNoobjCache: false, notsupCompatDir: true, extraOptions: ['max_stat_cache_size=1000', 'multireq_max=5'] },
    });
    const options = fuseOptions((await s3fs.mountCommand(bucket, testContext().ctx)).args);
    expect(options).toContain('stat_cache_expire=5');
    expect(options).not.toContain('enable_noobj_cache');
    expect(options).toContain('notsup_compat_dir');
    expect(options.slice(-2)).toEqual(['max_stat_cache_size=1000', 'multireq_max=5']);
  });

  it('never passes nonempty, and keeps keys out of its environment', async () => {
    await expect(s3fs.mountCommand(testBucket('s3fs', 'r2', { options: { extraOptions: ['nonempty'] } }), testContext().ctx)).rejects.toThrow(/nonempty/);
    const command = await s3fs.mountCommand(testBucket('s3fs', 'r2'), testContext({ PATH: '/bin', AWSACCESSKEYID: 'x', AWSSECRETACCESSKEY: 'y' }).ctx);
    expect(command.env).toEqual({ PATH: '/bin' });
  });

  it('refuses to mount without credentials, naming the key to set', async () => {
    const bucket = { ...testBucket('s3fs', 'r2'), credentials: undefined };
    await expect(s3fs.mountCommand(bucket, testContext().ctx)).rejects.toThrow(/buckets\.data\.credentials/);
  });
});

describe('rclone mount command', () => {
  const expectedProvider: Record<Provider, string> = { r2: 'Cloudflare', aws: 'AWS', other: 'Other' };

  for (const provider of PROVIDERS) {
    it(`configures a ${provider} remote through a 0600 config file, never the command line`, async () => {
      const bucket = testBucket('rclone', provider, { pathStyle: provider !== 'aws' });
      const { ctx, runs, written } = testContext({ PATH: '/usr/bin', HOME: '/root', RCLONE_CONFIG_PERSIST_ENDPOINT: 'http://elsewhere', RCLONE_S3_REGION: 'x' });
      const command = await rclone.mountCommand(bucket, ctx);
      const runtime = '/state/mounts/moltbot-data-dev-abc';
      const log = `${runtime}/rclone.log`;
      const conf = configFile(runtime);
      expect(command.command).toBe('sh');
      const rcloneArgs = command.args.slice(command.args.indexOf('rclone') + 1);
      const port = Number(rcloneArgs[rcloneArgs.indexOf('--rc-addr') + 1]?.split(':')[1]);
      expect(port).toBeGreaterThan(0);
      expect(rcloneArgs).toEqual([
        '--config', conf,
        'mount', 'persist:moltbot-data-dev', '/data/moltbot dev',
        '--devname', 'moltbot-data-dev',
        '--vfs-cache-mode', 'writes',
        '--cache-dir', `${runtime}/cache`,
        '--vfs-write-back', '1s',
        '--log-file', log,
        '--rc', '--rc-addr', `127.0.0.1:${port}`, '--rc-no-auth',
      ]);
      // Detached by persist (the shell records rclone's pid), early errors into the same log.
      expect(command.args.slice(0, 5)).toEqual(['-c', 'log=$1; pidfile=$2; shift 2; setsid "$@" </dev/null >>"$log" 2>&1 & echo $! >"$pidfile"', 'persist-rclone', log, pidFile(runtime)]);
      // No override variable reaches rclone: it would rename the cache folder (and redirect the remote).
      expect(command.env).toEqual({ PATH: '/usr/bin', HOME: '/root' });
      const text = [
        '[persist]',
        'type = s3',
        `provider = ${expectedProvider[provider]}`,
        `endpoint = ${bucket.endpoint}`,
        `region = ${bucket.region}`,
        `access_key_id = ${ACCESS_KEY}`,
        `secret_access_key = ${SECRET_KEY}`,
        'no_check_bucket = true',
        `force_path_style = ${String(provider !== 'aws')}`,
        '',
      ].join('\n');
      expect(written).toEqual([{ path: conf, content: text, mode: 0o600 }]);
      expect(command.files).toEqual([
        { path: conf, content: text, mode: 0o600 },
        { path: rcPortFile(runtime), content: `${port}\n`, mode: 0o600 },
      ]);
      expect(JSON.stringify(command.args)).not.toMatch(new RegExp(`${ACCESS_KEY}|${SECRET_KEY}`));
      expect(JSON.stringify(command.env)).not.toMatch(new RegExp(`${ACCESS_KEY}|${SECRET_KEY}`));
      // The bucket is listed first, through the same config file, with no secret in the arguments.
      expect(runs).toHaveLength(1);
      expect(runs[0]?.args.slice(0, 4)).toEqual(['--config', conf, 'lsf', 'persist:moltbot-data-dev']);
      expect(runs[0]?.env).toEqual(command.env);
      expect(JSON.stringify(runs[0]?.args)).not.toMatch(new RegExp(`${ACCESS_KEY}|${SECRET_KEY}`));
    });
  }

  it('moves AWS_CA_BUNDLE from the environment to --ca-cert', async () => {
    const command = await rclone.mountCommand(testBucket('rclone', 'r2'), testContext({ PATH: '/bin', AWS_CA_BUNDLE: '/etc/ssl/ca.pem' }).ctx);
    expect(command.env.AWS_CA_BUNDLE).toBeUndefined();
    const caIndex = command.args.indexOf('--ca-cert');
    expect(command.args[caIndex + 1]).toBe('/etc/ssl/ca.pem');
  });

  it('applies each option', async () => {
    const bucket = testBucket('rclone', 'r2', {
      options: { cacheMode: 'full', cacheDir: '/var/cache/persist', writeBack: '10s', dirCacheTime: '30s', extraArgs: ['--transfers', '8'] },
    });
    const args = (await rclone.mountCommand(bucket, testContext().ctx)).args;
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('--vfs-cache-mode')).toBe('full');
    expect(value('--cache-dir')).toBe('/var/cache/persist');
    expect(value('--vfs-write-back')).toBe('10s');
    expect(value('--dir-cache-time')).toBe('30s');
    expect(args.slice(-2)).toEqual(['--transfers', '8']);
  });

  it('stops with rclone\'s reason when the bucket cannot be listed', async () => {
    const { ctx } = testContext();
    (ctx.host as { run: unknown }).run = async () => ({
      exitCode: 3,
      stdout: '',
      stderr: '2026/01/01 NOTICE: Config file "/root/.config/rclone/rclone.conf" not found - using defaults\n2026/01/01 ERROR : : error listing: directory not found\n',
      timedOut: false,
    });
    await expect(rclone.mountCommand(testBucket('rclone', 'other'), ctx)).rejects.toThrow(
      /cannot list bucket moltbot-data-dev at http:\/\/127\.0\.0\.1:9000: .*directory not found/,
    );
  });
});

describe('goofys mount command', () => {
  for (const provider of PROVIDERS) {
    it(`mounts a ${provider} bucket with credentials in the environment`, async () => {
      const bucket = testBucket('goofys', provider);
      const command = await goofys.mountCommand(bucket, testContext({ PATH: '/bin', AWS_SESSION_TOKEN: 'stale' }).ctx);
      expect(command.command).toBe('goofys');
      expect(command.args).toEqual([
        '--endpoint', bucket.endpoint, '--region', bucket.region,
        '--stat-cache-ttl', '1m', '--type-cache-ttl', '1m',
        'moltbot-data-dev', '/data/moltbot dev',
      ]);
      expect(command.env).toEqual({ PATH: '/bin', AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY });
      expect(command.files).toEqual([]);
    });
  }

  it('applies each option, and --subdomain for virtual-host buckets', async () => {
    const withOptions = await goofys.mountCommand(
      testBucket('goofys', 'r2', { options: { statCacheTtl: '30s', typeCacheTtl: '2m', subdomain: true } }),
      testContext().ctx,
    );
    expect(withOptions.args).toEqual([
      '--endpoint', 'https://acct123.r2.cloudflarestorage.com', '--region', 'auto',
      '--stat-cache-ttl', '30s', '--type-cache-ttl', '2m', '--subdomain',
      'moltbot-data-dev', '/data/moltbot dev',
    ]);
    const virtualHost = await goofys.mountCommand(testBucket('goofys', 'aws', { pathStyle: false }), testContext().ctx);
    expect(virtualHost.args).toContain('--subdomain');
    const forcedOff = await goofys.mountCommand(testBucket('goofys', 'aws', { pathStyle: false, options: { subdomain: false } }), testContext().ctx);
    expect(forcedOff.args).not.toContain('--subdomain');
  });
});

describe('local backend', () => {
  it('has nothing to mount and owns no mount', async () => {
    await expect(local.mountCommand(testBucket('local', 'other'), testContext().ctx)).rejects.toThrow(/nothing to mount/);
    expect(local.validateOptions({})).toEqual([]);
  });
});

describe('option validation', () => {
  it('accepts every documented option with a good value', () => {
    expect(s3fs.validateOptions({ statCacheExpire: 0, enableNoobjCache: true, notsupCompatDir: false, extraOptions: ['multireq_max=5'] })).toEqual([]);
    expect(rclone.validateOptions({ cacheMode: 'minimal', cacheDir: '/c', writeBack: '500ms', dirCacheTime: '2h', extraArgs: ['--transfers=8'] })).toEqual([]);
    expect(goofys.validateOptions({ statCacheTtl: '1m', typeCacheTtl: '0s', subdomain: false })).toEqual([]);
  });

  it('names unknown keys and wrong types', () => {
    expect(s3fs.validateOptions({ statCacheTtl: '1m', statCacheExpire: '60', enableNoobjCache: 'yes' })).toEqual([
      { key: 'statCacheTtl', message: 'unknown option for the s3fs backend; known options: statCacheExpire, enableNoobjCache, notsupCompatDir, transfers, extraOptions' },
      { key: 'statCacheExpire', message: 'expected a whole number of seconds (0 or more)' },
      { key: 'enableNoobjCache', message: 'expected true or false' },
    ]);
    expect(s3fs.validateOptions({ transfers: 'sometimes' }).map((p) => p.key)).toEqual(['transfers']);
    expect(rclone.validateOptions({ cacheMode: 'sometimes', writeBack: '5', dirCacheTime: '1d', cacheDir: 'relative', extraArgs: 'x' }).map((p) => p.key)).toEqual([
      'cacheMode', 'writeBack', 'dirCacheTime', 'cacheDir', 'extraArgs',
    ]);
    expect(goofys.validateOptions({ statCacheTtl: 60, subdomain: 'true' }).map((p) => p.key)).toEqual(['statCacheTtl', 'subdomain']);
    expect(local.validateOptions({ cacheMode: 'writes' })).toEqual([{ key: 'cacheMode', message: 'the local backend takes no options' }]);
  });

  it('refuses options that hide data or override what persist sets', () => {
    expect(s3fs.validateOptions({ extraOptions: ['nonempty'] })[0]?.message).toMatch(/nonempty.*hide/);
    expect(s3fs.validateOptions({ extraOptions: ['passwd_file=/tmp/x'] })[0]?.message).toMatch(/passwd_file.*set by persist/);
    expect(rclone.validateOptions({ extraArgs: ['--allow-non-empty'] })[0]?.message).toMatch(/allow-non-empty.*hide/);
    expect(rclone.validateOptions({ extraArgs: ['--devname=x'] })[0]?.message).toMatch(/--devname.*set by persist/);
  });
});

describe('matching mountinfo entries', () => {
  // Recorded on Debian bookworm (s3fs 1.90, rclone 1.60.1 with --devname, goofys 0.24).
  const table = parseMountinfo(
    [
      '42 27 0:39 / /data/moltbot-development rw,nosuid,nodev,relatime - fuse.s3fs moltbot-data-development rw,user_id=0,group_id=0',
      '43 27 0:40 / /data/moltbot\\040prod rw,nosuid,nodev,relatime - fuse.rclone moltbot-data-dev rw,user_id=0,group_id=0',
      '44 27 0:41 / /data/moltbot rw,nosuid,nodev,relatime - fuse.goofys moltbot-data-dev rw,user_id=0,group_id=0,default_permissions',
      '45 27 0:42 / /data/plain rw,nosuid,nodev,relatime - fuse.s3fs s3fs rw,user_id=0,group_id=0',
      '46 27 0:43 / /data/sshfs rw,relatime - fuse.sshfs me@host: rw,user_id=0,group_id=0',
    ].join('\n'),
  );
  const [s3fsEntry, rcloneEntry, goofysEntry, defaultS3fsEntry, sshfsEntry] = table;

  it('matches each backend to its own entry and bucket only', () => {
    const bucket = testBucket('s3fs', 'r2');
    const dev = { ...bucket, name: 'moltbot-data-dev' };
    const development = { ...bucket, name: 'moltbot-data-development' };
    expect(s3fs.matches(s3fsEntry!, development)).toBe(true);
    expect(s3fs.matches(s3fsEntry!, dev)).toBe(false);
    expect(rclone.matches(rcloneEntry!, dev)).toBe(true);
    expect(rclone.matches(rcloneEntry!, development)).toBe(false);
    expect(s3fs.matches(rcloneEntry!, dev)).toBe(false);
    expect(goofys.matches(goofysEntry!, dev)).toBe(true);
    expect(rclone.matches(goofysEntry!, dev)).toBe(false);
    // Without fsname the source is `s3fs`: the bucket is unknown, so it is not this bucket.
    expect(s3fs.matches(defaultS3fsEntry!, { ...bucket, name: 's3fs-other' })).toBe(false);
    expect(local.matches(s3fsEntry!, development)).toBe(false);
  });

  it('finds the backend that made an entry, and none for foreign file systems', () => {
    expect(table.map((entry) => backendOwning(entry))).toEqual(['s3fs', 'rclone', 'goofys', 's3fs', undefined]);
    expect(rcloneEntry?.mountPoint).toBe('/data/moltbot prod');
    expect(backendOwning(sshfsEntry!)).toBeUndefined();
  });
});

describe('a bucket prefix in the mount commands', () => {
  it('mounts bucket:/prefix with s3fs, remote:bucket/prefix with rclone; the source stays the bucket', async () => {
    const { ctx } = testContext();
    const s3fsCommand = await s3fs.mountCommand(testBucket('s3fs', 'r2', { prefix: 'agents/one/' }), ctx);
    expect(s3fsCommand.args[0]).toBe('moltbot-data-dev:/agents/one');
    expect(fuseOptions(s3fsCommand.args)).toContain('fsname=moltbot-data-dev');
    const rcloneCommand = await getBackend('rclone').mountCommand(testBucket('rclone', 'r2', { prefix: 'agents/one/' }), ctx);
    expect(rcloneCommand.args.some((arg) => arg.endsWith(':moltbot-data-dev/agents/one'))).toBe(true);
  });
});
