// Shared fixtures for the backend unit tests: buckets for each provider, a context with no host use.
import type { BackendContext } from '../../src/backends/types.js';
import type { Host } from '../../src/host/types.js';
import { Sensitive } from '../../src/spec/sensitive.js';
import type { BackendName, MountedBucket, Provider } from '../../src/spec/types.js';

export const ACCESS_KEY = 'AKIDEXAMPLE0123456789';
export const SECRET_KEY = 'wJalrXUtnFEMI-secret-value-K7MDENG';

export function testBucket(
  backend: BackendName,
  provider: Provider,
  overrides: { options?: Record<string, unknown>; pathStyle?: boolean; endpoint?: string; region?: string; prefix?: string } = {},
): MountedBucket {
  const endpoints: Record<Provider, string> = {
    r2: 'https://acct123.r2.cloudflarestorage.com',
    aws: 'https://s3.eu-west-1.amazonaws.com',
    other: 'http://127.0.0.1:9000',
  };
  const regions: Record<Provider, string> = { r2: 'auto', aws: 'eu-west-1', other: 'us-east-1' };
  return {
    key: 'data',
    name: 'moltbot-data-dev',
    endpoint: overrides.endpoint ?? endpoints[provider],
    region: overrides.region ?? regions[provider],
    pathStyle: overrides.pathStyle ?? true,
    provider,
    credentials: { accessKeyId: new Sensitive(ACCESS_KEY), secretAccessKey: new Sensitive(SECRET_KEY) },
    prefix: overrides.prefix ?? '',
    mount: { backend, path: '/data/moltbot dev', options: overrides.options ?? {} },
  };
}

/**
 * A context whose host answers only what the drivers ask while building a command: rclone lists
 * the bucket first (answered with success here; the end-to-end tests run the real thing).
 */
export function testContext(processEnv: Record<string, string | undefined> = { PATH: '/usr/bin', HOME: '/root' }) {
  const runs: { command: string; args: string[]; env?: Record<string, string | undefined> }[] = [];
  const written: { path: string; content: string; mode?: number }[] = [];
  const host = {
    async run(command: string, args: string[], options?: { env?: Record<string, string | undefined> }) {
      runs.push({ command, args, env: options?.env });
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false };
    },
    async writeFile(path: string, data: string | Buffer, options?: { mode?: number }) {
      written.push({ path, content: data.toString(), ...(options?.mode === undefined ? {} : { mode: options.mode }) });
    },
    async chmod() {},
  } as unknown as Host;
  const ctx: BackendContext = { host, runtimeDir: '/state/mounts/moltbot-data-dev-abc', processEnv };
  return { ctx, runs, written };
}

/** Value of `-o key=...` (s3fs) options, in order. */
export function fuseOptions(args: string[]): string[] {
  return args.flatMap((arg, index) => (args[index - 1] === '-o' ? [arg] : []));
}
