// Resolution rules on small specs: defaults, paths, interpolation, providers, claims allowed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PersistError, SpecError } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { tempDir, writeSpec } from './helpers.js';

const bucket = (extra = '') => `version: 1
buckets:
  data:
    name: test-data
${extra}    mount:
      backend: local
      path: ./bucket
`;

describe('resolution', () => {
  it('resolves relative paths against the spec file folder, not the working directory', async () => {
    const file = writeSpec(`${bucket()}workspace: ./ws
links:
  memory: ./workspace//memory/
syncs:
  state: {from: state, to: mirror/state}
`);
    const dir = join(file, '..');
    const env = await loadEnvironment({ file, processEnv: {}, cwd: '/' });
    expect(env.environment).toBe('default');
    expect(env.workspace).toBe(join(dir, 'ws'));
    expect(env.buckets.data?.mount?.path).toBe(join(dir, 'bucket'));
    expect(env.links.memory).toMatchObject({ path: join(dir, 'ws', 'memory'), relTarget: 'workspace/memory', target: join(dir, 'bucket', 'workspace', 'memory') });
    expect(env.syncs.state).toMatchObject({ from: join(dir, 'state'), relTo: 'mirror/state', to: join(dir, 'bucket', 'mirror', 'state') });
  });

  it('defaults the workspace to the spec folder and fills in defaults', async () => {
    const file = writeSpec(`${bucket()}links:
  notes: {path: notes}
bundles:
  repo: {repo: ./repo, file: repo.bundle}
syncs:
  state: {from: ./state, to: state}
files:
  env: {from: app.env, to: ./app.env}
`);
    const env = await loadEnvironment({ file, processEnv: {} });
    expect(env.workspace).toBe(join(file, '..'));
    expect(env.buckets.data).toMatchObject({ pathStyle: true, provider: 'aws', mount: { options: {} } });
    expect(env.buckets.data?.credentials).toBeUndefined();
    expect(env.bundles.repo?.keep).toBe(5);
    expect(env.bundles.repo?.remote).toBeUndefined();
    expect(env.syncs.state).toMatchObject({ delete: false, exclude: [], maxDeleteRatio: 0.5 });
    expect(env.files.env?.mode).toBe(0o600);
  });

  it('reads a file mode as octal and keeps a bundle remote', async () => {
    const file = writeSpec(`${bucket()}bundles:
  repo: {repo: ./repo, file: repo.bundle, keep: 0, remote: "https://example.com/r.git"}
files:
  script: {from: run.sh, to: ./run.sh, mode: "755"}
`);
    const env = await loadEnvironment({ file, processEnv: {} });
    expect(env.files.script?.mode).toBe(0o755);
    expect(env.bundles.repo).toMatchObject({ keep: 0, remote: 'https://example.com/r.git' });
  });

  it.each([
    ['https://abc.r2.cloudflarestorage.com', 'r2'],
    ['https://s3.eu-west-1.amazonaws.com', 'aws'],
    ['http://127.0.0.1:9000', 'other'],
  ])('infers the provider of %s as %s', async (endpoint, provider) => {
    const file = writeSpec(bucket(`    endpoint: ${endpoint}\n`));
    const env = await loadEnvironment({ file, processEnv: {} });
    expect(env.buckets.data?.provider).toBe(provider);
  });

  it('keeps a provider that is given', async () => {
    const file = writeSpec(bucket('    endpoint: http://127.0.0.1:9000\n    provider: r2\n    pathStyle: false\n'));
    const env = await loadEnvironment({ file, processEnv: {} });
    expect(env.buckets.data).toMatchObject({ provider: 'r2', pathStyle: false });
  });

  it('interpolates ${environment}, variables and fallbacks; an empty variable takes the fallback', async () => {
    const file = writeSpec(`version: 1
buckets:
  data:
    name: app-\${env:APP}-\${environment}
    region: \${env:REGION:-auto}
    endpoint: \${env:ENDPOINT:-http://localhost:9000}
    mount: {backend: local, path: "./m-\${environment}"}
environments:
  dev: {}
  prod: {}
`);
    const env = await loadEnvironment({ file, environment: 'prod', processEnv: { APP: 'shop', ENDPOINT: '' } });
    expect(env.buckets.data).toMatchObject({ name: 'app-shop-prod', region: 'auto', endpoint: 'http://localhost:9000' });
    expect(env.buckets.data?.mount?.path).toBe(join(file, '..', 'm-prod'));
  });

  it('allows links, restored files and syncs inside a bundle repo folder', async () => {
    const file = writeSpec(`${bucket()}workspace: ./repo
links:
  memory: workspace/memory
bundles:
  repo: {repo: ./repo, file: repo.bundle}
syncs:
  cache: {from: ./repo/.cache, to: cache}
files:
  env: {from: app.env, to: ./repo/.env}
`);
    expect((await validateSpec({ file, processEnv: {} })).problems).toEqual([]);
  });

  it('reports every problem at once', async () => {
    const file = writeSpec(`version: 1
buckets:
  data:
    name: test-data
    colour: red
    mount: {backend: goofys, path: ./bucket, options: {statCacheTtl: soon}}
links:
  memory: ../outside
`);
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems.map((p) => [p.line, p.path])).toEqual([
      [5, 'buckets.data.colour'],
      [6, 'buckets.data.mount.options.statCacheTtl'],
      [8, 'links.memory'],
    ]);
    const error = await loadEnvironment({ file, processEnv: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    expect((error as SpecError).problems).toHaveLength(3);
    expect((error as SpecError).message.split('\n')).toHaveLength(3);
  });

  it('names the file as the user gave it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'spec.yaml'), 'version: 3\nbuckets: {}\n');
    const { problems } = await validateSpec({ file: 'spec.yaml', cwd: dir, processEnv: {} });
    expect(problems[0]).toMatchObject({ file: 'spec.yaml', line: 1, column: 10, path: 'version' });
  });

  it('throws a PersistError naming a missing spec, or a directory given as one', async () => {
    const dir = tempDir();
    await expect(loadEnvironment({ file: 'absent.yaml', cwd: dir, processEnv: {} })).rejects.toThrow(/spec file absent\.yaml does not exist/);
    mkdirSync(join(dir, 'folder.yaml'));
    const error = await validateSpec({ file: 'folder.yaml', cwd: dir, processEnv: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PersistError);
    expect((error as Error).message).toBe('spec file folder.yaml is a directory, expected a YAML file');
  });

  it('checks other environments for isolation without their missing variables blocking the selected one', async () => {
    const file = writeSpec(`version: 1
buckets:
  data:
    name: app-\${environment}
    mount:
      backend: local
      path: ./m-\${environment}
environments:
  dev: {}
  prod:
    buckets:
      data:
        endpoint: https://\${env:PROD_ACCOUNT}.r2.cloudflarestorage.com
`);
    const env = await loadEnvironment({ file, environment: 'dev', processEnv: {} });
    expect(env.buckets.data?.name).toBe('app-dev');
    const all = await validateSpec({ file, processEnv: {} });
    expect(all.problems.map((p) => p.message)).toEqual(['environment variable PROD_ACCOUNT is not set (environment prod)']);
    expect(all.problems[0]).toMatchObject({ line: 13, path: 'environments.prod.buckets.data.endpoint' });
  });
});
