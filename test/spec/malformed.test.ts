// A table of broken specs: each must give a clear problem naming the line and the key path.
import { describe, expect, it } from 'vitest';
import { SpecError, type SpecProblem } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { writeSpec } from './helpers.js';

/** A valid spec of 7 lines; cases append to it or replace it. */
const BASE = ['version: 1', 'buckets:', '  data:', '    name: test-data', '    mount:', '      backend: local', '      path: ./bucket'];

/** The bucket above with a FUSE backend and options (lines 1-8, options start at line 9). */
const withBackend = (backend: string, ...options: string[]) => [
  'version: 1',
  'buckets:',
  '  data:',
  '    name: test-data',
  '    mount:',
  `      backend: ${backend}`,
  '      path: ./bucket',
  '      options:',
  ...options.map((option) => `        ${option}`),
];

interface Expected {
  message: string;
  line: number;
  path: string;
}
interface Case {
  name: string;
  yaml: string[] | string;
  expect: Expected[];
  /** --env */
  env?: string;
  processEnv?: Record<string, string>;
  /** Check with loadEnvironment (selection as for plan) instead of validateSpec. */
  load?: boolean;
  /** Further problems may follow from the same mistake. */
  atLeast?: boolean;
}

const TWO_ENVS = ['environments:', '  dev: {}', '  prod: {}'];
/** BASE with one bucket and mount path per environment (same line numbers). */
const BASE_PER_ENV = ['version: 1', 'buckets:', '  data:', '    name: test-${environment}', '    mount:', '      backend: local', '      path: ./bucket-${environment}'];

const cases: Case[] = [
  // --- YAML itself
  { name: 'tab indentation', yaml: ['version: 1', 'buckets:', '\tdata: {}'], expect: [{ message: 'tabs are not allowed for indentation', line: 3, path: '' }], atLeast: true },
  { name: 'duplicate key', yaml: ['version: 1', 'buckets: {}', 'version: 1'], expect: [{ message: 'duplicate key "version"', line: 3, path: 'version' }] },
  { name: 'duplicate nested key', yaml: [...BASE, 'links:', '  memory: a', '  memory: b'], expect: [{ message: 'duplicate key "memory"', line: 10, path: 'links.memory' }] },
  { name: 'duplicate key in a flow mapping', yaml: [...BASE, 'syncs:', '  s: { from: ./s, to: s, from: ./t }'], expect: [{ message: 'duplicate key "from"', line: 9, path: 'syncs.s.from' }] },
  { name: 'duplicate key two levels down', yaml: [...BASE, 'links:', '  memory:', '    path: a', '    path: b'], expect: [{ message: 'duplicate key "path"', line: 11, path: 'links.memory.path' }] },
  { name: 'duplicate key in a list item', yaml: [...BASE, 'syncs:', '  s:', '    from: ./s', '    to: s', '    exclude:', '      - { a: 1, a: 2 }'], expect: [{ message: 'duplicate key "a"', line: 13, path: 'syncs.s.exclude[0].a' }] },
  { name: 'empty file', yaml: '', expect: [{ message: 'the spec is empty', line: 1, path: '' }] },
  { name: 'only comments', yaml: ['# nothing here', '# at all'], expect: [{ message: 'the spec is empty', line: 1, path: '' }] },
  { name: 'list at the root', yaml: ['- version: 1', '- buckets: {}'], expect: [{ message: 'must be a mapping of keys', line: 1, path: '' }] },
  { name: 'scalar at the root', yaml: ['just text'], expect: [{ message: 'must be a mapping of keys', line: 1, path: '' }] },
  {
    name: 'binary bytes at the root are not echoed raw',
    yaml: [`\u0001\u001b[31m${'x'.repeat(100)}`],
    expect: [{ message: `the spec must be a mapping of keys (version, buckets, ...), not a string (??[31m${'x'.repeat(51)}...)`, line: 1, path: '' }],
  },
  { name: 'two documents', yaml: [...BASE, '---', 'version: 1'], expect: [{ message: 'exactly one YAML document', line: 8, path: '' }] },
  {
    name: 'alias bomb',
    yaml: ['version: 1', 'a: &a ["lol", "lol", "lol"]', 'b: &b [*a, *a, *a]', 'c: &c [*b, *b, *b]', 'd: [*c, *c, *c]'],
    expect: [
      { message: 'YAML anchors (&a) are not supported', line: 2, path: '' },
      { message: 'YAML aliases (*name) are not supported', line: 5, path: '' },
    ],
    atLeast: true,
  },
  { name: 'unterminated flow list', yaml: [...BASE, 'links: [a,'], expect: [{ message: 'Flow sequence', line: 9, path: '' }], atLeast: true },
  // --- structure
  { name: 'wrong version', yaml: ['version: 2', ...BASE.slice(1)], expect: [{ message: 'unsupported version 2', line: 1, path: 'version' }] },
  { name: 'file mode with setuid', yaml: [...BASE, 'files:', '  creds: { from: a, to: ./a, mode: "4777" }'], expect: [{ message: '"4777" sets setuid, setgid or sticky bits', line: 9, path: 'files.creds.mode' }] },
  { name: 'version as a string', yaml: ['version: "1"', ...BASE.slice(1)], expect: [{ message: 'must be the number 1, not the string "1"', line: 1, path: 'version' }] },
  { name: 'missing version', yaml: BASE.slice(1), expect: [{ message: 'missing required key "version"', line: 1, path: '' }] },
  { name: 'no buckets', yaml: ['version: 1', 'buckets: {}'], expect: [{ message: 'declare at least one bucket', line: 2, path: 'buckets' }] },
  { name: 'unknown top-level key', yaml: [...BASE, 'colour: red'], expect: [{ message: 'unknown key "colour"; expected one of: version, defaultEnvironment', line: 8, path: 'colour' }] },
  { name: 'unknown bucket field', yaml: [...BASE, '    colour: red'], expect: [{ message: 'unknown key "colour"; expected one of: name, endpoint, region', line: 8, path: 'buckets.data.colour' }] },
  { name: 'unknown mount field', yaml: [...BASE, '      readonly: true'], expect: [{ message: 'unknown key "readonly"; expected one of: backend, path, options', line: 8, path: 'buckets.data.mount.readonly' }] },
  { name: 'bad backend', yaml: [...BASE.slice(0, 5), '      backend: ftp', BASE[6] as string], expect: [{ message: '"ftp" is not one of: s3fs, rclone, goofys, local', line: 6, path: 'buckets.data.mount.backend' }] },
  { name: 'empty section', yaml: [...BASE, 'links:'], expect: [{ message: 'expected a mapping, got an empty value', line: 8, path: 'links' }] },
  // --- backend options
  { name: 'unknown s3fs option', yaml: withBackend('s3fs', 'statCacheTtl: 1m'), expect: [{ message: 'unknown key "statCacheTtl"; expected one of: statCacheExpire, enableNoobjCache, notsupCompatDir, transfers, extraOptions', line: 9, path: 'buckets.data.mount.options.statCacheTtl' }] },
  { name: 'unknown rclone option', yaml: withBackend('rclone', 'cacheMode: writes', 'vfsCache: big'), expect: [{ message: 'unknown key "vfsCache"; expected one of: cacheMode, cacheDir', line: 10, path: 'buckets.data.mount.options.vfsCache' }] },
  { name: 'unknown goofys option', yaml: withBackend('goofys', 'cacheMode: full'), expect: [{ message: 'unknown key "cacheMode"; expected one of: statCacheTtl, typeCacheTtl, subdomain', line: 9, path: 'buckets.data.mount.options.cacheMode' }] },
  { name: 'any option on local', yaml: withBackend('local', 'fast: true'), expect: [{ message: 'the local backend takes no options', line: 9, path: 'buckets.data.mount.options.fast' }] },
  { name: 'bad goofys duration', yaml: withBackend('goofys', 'statCacheTtl: 1 minute'), expect: [{ message: '"1 minute" is not a duration', line: 9, path: 'buckets.data.mount.options.statCacheTtl' }] },
  { name: 'number as rclone duration', yaml: withBackend('rclone', 'writeBack: 5'), expect: [{ message: 'expected a string, got the whole number 5', line: 9, path: 'buckets.data.mount.options.writeBack' }] },
  { name: 'bad rclone cache mode', yaml: withBackend('rclone', 'cacheMode: sometimes'), expect: [{ message: '"sometimes" is not one of: off, minimal, writes, full', line: 9, path: 'buckets.data.mount.options.cacheMode' }] },
  { name: 's3fs nonempty', yaml: withBackend('s3fs', 'extraOptions: [max_stat_cache_size=1000, nonempty]'), expect: [{ message: '"nonempty" is refused: mounting over a non-empty folder hides its data', line: 9, path: 'buckets.data.mount.options.extraOptions[1]' }] },
  { name: 's3fs credentials option', yaml: withBackend('s3fs', 'extraOptions:', '  - passwd_file=/etc/passwd-s3fs'), expect: [{ message: 'credentials may not be passed as mount options', line: 10, path: 'buckets.data.mount.options.extraOptions[0]' }] },
  { name: 's3fs seconds as a string', yaml: withBackend('s3fs', 'statCacheExpire: "60"'), expect: [{ message: 'expected a whole number, got the string "60"', line: 9, path: 'buckets.data.mount.options.statCacheExpire' }] },
  // --- names
  { name: 'bad bucket key', yaml: ['version: 1', 'buckets:', '  -data:', '    name: test-data', '    mount: {backend: local, path: ./b}'], expect: [{ message: '"-data" is not a valid name', line: 3, path: 'buckets.-data' }] },
  { name: 'bad link name', yaml: [...BASE, 'links:', '  my memory: workspace/memory'], expect: [{ message: '"my memory" is not a valid name', line: 9, path: 'links.my memory' }] },
  { name: 'bad environment name', yaml: [...BASE, 'environments:', '  _dev: {}'], expect: [{ message: '"_dev" is not a valid name', line: 9, path: 'environments._dev' }] },
  { name: 'bad bucket name at the store', yaml: ['version: 1', 'buckets:', '  data:', '    name: Test_Data', '    mount: {backend: local, path: ./b}'], expect: [{ message: '"Test_Data" is not a valid bucket name', line: 4, path: 'buckets.data.name' }] },
  // --- required keys and types
  { name: 'bucket without name', yaml: ['version: 1', 'buckets:', '  data:', '    mount: {backend: local, path: ./b}'], expect: [{ message: 'missing required key "name"', line: 3, path: 'buckets.data' }] },
  { name: 'mount without path', yaml: ['version: 1', 'buckets:', '  data:', '    name: test-data', '    mount:', '      backend: local'], expect: [{ message: 'missing required key "path"', line: 5, path: 'buckets.data.mount' }] },
  { name: 'sync without to', yaml: [...BASE, 'syncs:', '  state:', '    from: ./state'], expect: [{ message: 'missing required key "to"', line: 9, path: 'syncs.state' }] },
  { name: 'credentials half given', yaml: [...BASE, '    credentials:', '      accessKeyId: abc'], expect: [{ message: 'missing required key "secretAccessKey"', line: 8, path: 'buckets.data.credentials' }] },
  { name: 'negative keep', yaml: [...BASE, 'bundles:', '  repo:', '    repo: ./repo', '    file: repo.bundle', '    keep: -1'], expect: [{ message: 'must be at least 0', line: 12, path: 'bundles.repo.keep' }] },
  { name: 'delete ratio above 1', yaml: [...BASE, 'syncs:', '  state: {from: ./state, to: state, maxDeleteRatio: 2}'], expect: [{ message: 'must be at most 1', line: 9, path: 'syncs.state.maxDeleteRatio' }] },
  { name: 'delete as a string', yaml: [...BASE, 'syncs:', '  state:', '    from: ./state', '    to: state', '    delete: "yes"'], expect: [{ message: 'expected true or false, got the string "yes"', line: 12, path: 'syncs.state.delete' }] },
  { name: 'exclude as a string', yaml: [...BASE, 'syncs:', '  state:', '    from: ./state', '    to: state', '    exclude: "*.lock"'], expect: [{ message: 'expected a list, got the string "*.lock"', line: 12, path: 'syncs.state.exclude' }] },
  { name: 'bad file mode', yaml: [...BASE, 'files:', '  env:', '    from: app.env', '    to: ./app.env', '    mode: "0999"'], expect: [{ message: '"0999" is not a file mode', line: 12, path: 'files.env.mode' }] },
  { name: 'unquoted file mode', yaml: [...BASE, 'files:', '  env:', '    from: app.env', '    to: ./app.env', '    mode: 0600'], expect: [{ message: 'expected a file mode in quotes, such as "0600"', line: 12, path: 'files.env.mode' }] },
  { name: 'endpoint not a URL', yaml: [...BASE, '    endpoint: minio.local:9000'], expect: [{ message: '"minio.local:9000" is not a URL', line: 8, path: 'buckets.data.endpoint' }] },
  {
    name: 'credential of the wrong type never shows its value',
    yaml: [...BASE, '    credentials:', '      accessKeyId: 987654321', '      secretAccessKey: x'],
    expect: [{ message: 'expected a string, got a number (sensitive)', line: 9, path: 'buckets.data.credentials.accessKeyId' }],
  },
  // --- paths
  { name: '.. leaves the mount', yaml: [...BASE, 'links:', '  memory: ../elsewhere'], expect: [{ message: '"../elsewhere" leaves the mount of bucket data', line: 9, path: 'links.memory' }] },
  { name: '.. in the middle leaves the mount', yaml: [...BASE, 'syncs:', '  state:', '    from: ./state', '    to: a/../../b'], expect: [{ message: 'leaves the mount', line: 11, path: 'syncs.state.to' }] },
  { name: 'absolute path in the mount', yaml: [...BASE, 'bundles:', '  repo:', '    repo: ./repo', '    file: /backups/repo.bundle'], expect: [{ message: '"/backups/repo.bundle" must be relative to the mount of bucket data', line: 11, path: 'bundles.repo.file' }] },
  { name: 'the mount itself', yaml: [...BASE, 'links:', '  all: ./'], expect: [{ message: 'is the mount itself', line: 9, path: 'links.all' }] },
  { name: 'home shorthand', yaml: [...BASE, 'syncs:', '  state: {from: ~/state, to: state}'], expect: [{ message: '~ is not expanded', line: 9, path: 'syncs.state.from' }] },
  { name: 'mount at the root', yaml: [...BASE.slice(0, 6), '      path: /'], expect: [{ message: 'the mount path may not be /', line: 7, path: 'buckets.data.mount.path' }], atLeast: true },
  // --- claims
  { name: 'two links, same target', yaml: [...BASE, 'links:', '  memory: workspace/memory', '  notes: workspace/./memory/'], expect: [{ message: 'link.notes and link.memory claim the same path in the mount of bucket data: workspace/memory', line: 10, path: 'links.notes' }] },
  { name: 'nested link targets', yaml: [...BASE, 'links:', '  all: workspace', '  memory: workspace/memory'], expect: [{ message: 'link.memory and link.all claim nested paths in the mount of bucket data', line: 10, path: 'links.memory' }] },
  { name: 'sync mirror inside a link target', yaml: [...BASE, 'links:', '  memory: workspace/memory', 'syncs:', '  db:', '    from: ./db', '    to: workspace/memory/db'], expect: [{ message: 'sync.db and link.memory claim nested paths in the mount of bucket data', line: 13, path: 'syncs.db.to' }] },
  { name: 'restored file on a bundle generation', yaml: [...BASE, 'bundles:', '  repo: {repo: ./repo, file: repo.bundle, keep: 2}', 'files:', '  old: {from: repo.bundle.2, to: ./old.bundle}'], expect: [{ message: 'file.old and bundle.repo claim the same path in the mount of bucket data: repo.bundle.2', line: 11, path: 'files.old.from' }] },
  { name: 'sync and file, same local path', yaml: [...BASE, 'syncs:', '  state: {from: ./state, to: state}', 'files:', '  state: {from: state.txt, to: ./state}'], expect: [{ message: 'file.state and sync.state claim the same path on local disk', line: 11, path: 'files.state.to' }] },
  { name: 'sync around a link', yaml: [...BASE, 'workspace: ./ws', 'links:', '  memory: workspace/memory', 'syncs:', '  ws: {from: ./ws, to: ws}'], expect: [{ message: 'sync.ws and link.memory claim nested paths on local disk', line: 12, path: 'syncs.ws.from' }] },
  { name: 'sync of a whole repo', yaml: [...BASE, 'bundles:', '  repo: {repo: ./repo, file: repo.bundle}', 'syncs:', '  repo: {from: ./repo, to: repo}'], expect: [{ message: 'sync.repo and bundle.repo claim the same path on local disk', line: 11, path: 'syncs.repo.from' }] },
  { name: 'local path inside the mount', yaml: [...BASE, 'syncs:', '  state: {from: ./bucket/state, to: state}'], expect: [{ message: 'lies in the mount path of bucket data', line: 9, path: 'syncs.state.from' }] },
  // --- buckets
  {
    name: 'bucket required with two buckets',
    yaml: [...BASE, '  logs:', '    name: test-logs', '    mount: {backend: local, path: ./logs-bucket}', 'links:', '  memory: workspace/memory'],
    expect: [{ message: 'bucket: is required because the spec has 2 buckets (data, logs)', line: 12, path: 'links.memory' }],
  },
  { name: 'lease ttl not a duration', yaml: [...BASE, '    lease: { ttl: 1 minute }'], expect: [{ message: '"1 minute" is not a duration', line: 8, path: 'buckets.data.lease.ttl' }] },
  { name: 'lease ttl too short', yaml: [...BASE, '    lease: { ttl: 500ms }'], expect: [{ message: '"500ms" is too short for a lease\'s time to live; use at least 1s', line: 8, path: 'buckets.data.lease.ttl' }] },
  { name: 'unknown lease key', yaml: [...BASE, '    lease:', '      timeout: 60s'], expect: [{ message: 'unknown key "timeout"; expected one of: ttl', line: 9, path: 'buckets.data.lease.timeout' }] },
  { name: 'unknown bucket reference', yaml: [...BASE, 'links:', '  memory: {path: workspace/memory, bucket: nope}'], expect: [{ message: 'unknown bucket "nope"; known: data', line: 9, path: 'links.memory.bucket' }] },
  {
    name: 'two buckets, same mount path',
    yaml: [...BASE, '  logs:', '    name: test-logs', '    mount: {backend: local, path: ./bucket/}'],
    expect: [{ message: 'buckets data and logs have the same or nested mount paths', line: 10, path: 'buckets.logs.mount.path' }],
  },
  // --- interpolation
  {
    name: 'missing variables, all at once',
    yaml: ['version: 1', 'buckets:', '  data:', '    name: ${env:BUCKET_NAME}', '    endpoint: https://${env:ACCOUNT}.r2.cloudflarestorage.com', '    mount: {backend: local, path: ./b}'],
    expect: [
      { message: 'environment variable BUCKET_NAME is not set', line: 4, path: 'buckets.data.name' },
      { message: 'environment variable ACCOUNT is not set', line: 5, path: 'buckets.data.endpoint' },
    ],
  },
  { name: 'unquoted reference in a flow mapping', yaml: [...BASE.slice(0, 4), '    mount: {backend: local, path: ./b-${environment}}'], expect: [{ message: 'a value holding ${...} inside { } or [ ] must be quoted', line: 5, path: '' }], atLeast: true },
  { name: 'unknown reference', yaml: [...BASE.slice(0, 6), '      path: ./${home}'], expect: [{ message: 'unknown reference ${home}', line: 7, path: 'buckets.data.mount.path' }] },
  // --- environments
  { name: 'unknown environment from --env', yaml: [...BASE_PER_ENV, ...TWO_ENVS], env: 'staging', expect: [{ message: 'unknown environment "staging" (from --env); known: dev, prod', line: 8, path: 'environments' }] },
  { name: 'unknown environment from $ENVIRONMENT', yaml: [...BASE_PER_ENV, ...TWO_ENVS], load: true, processEnv: { ENVIRONMENT: 'qa' }, expect: [{ message: 'unknown environment "qa" (from $ENVIRONMENT); known: dev, prod', line: 8, path: 'environments' }] },
  { name: 'environments but none selected', yaml: [...BASE_PER_ENV, ...TWO_ENVS], load: true, expect: [{ message: 'no environment selected: give --env NAME, set ENVIRONMENT, or set defaultEnvironment; known: dev, prod', line: 8, path: 'environments' }] },
  { name: 'unknown defaultEnvironment', yaml: [...BASE_PER_ENV, 'defaultEnvironment: main', ...TWO_ENVS], expect: [{ message: 'unknown environment "main"; known: dev, prod', line: 8, path: 'defaultEnvironment' }] },
  { name: '--env on a spec without environments', yaml: BASE, env: 'prod', expect: [{ message: 'the spec declares no environments, so its only environment is "default"', line: 1, path: '' }] },
  { name: 'unknown key in an overlay', yaml: [...BASE_PER_ENV, 'environments:', '  dev:', '    buckets:', '      data:', '        colour: red'], expect: [{ message: 'unknown key "colour"', line: 12, path: 'environments.dev.buckets.data.colour' }] },
  { name: 'version in an overlay', yaml: [...BASE_PER_ENV, 'environments:', '  dev:', '    version: 2'], expect: [{ message: 'unknown key "version"; expected one of: workspace, buckets, links', line: 10, path: 'environments.dev.version' }] },
  {
    name: 'overlay switches the backend under options it does not take',
    yaml: [...BASE_PER_ENV.slice(0, 5), '      backend: goofys', BASE_PER_ENV[6] as string, '      options:', '        statCacheTtl: 1m', 'environments:', '  dev: {}', '  prod:', '    buckets:', '      data:', '        mount: {backend: s3fs}'],
    expect: [{ message: 'unknown key "statCacheTtl"; expected one of: statCacheExpire, enableNoobjCache, notsupCompatDir, transfers, extraOptions (environment prod)', line: 9, path: 'buckets.data.mount.options.statCacheTtl' }],
  },
  // --- isolation across environments
  {
    name: 'two environments, same bucket',
    yaml: ['version: 1', 'buckets:', '  data:', '    name: shared-data', '    mount:', '      backend: local', '      path: ./bucket-${environment}', ...TWO_ENVS],
    expect: [{ message: 'environments dev and prod both use bucket "shared-data"', line: 4, path: 'buckets.data.name' }],
  },
  {
    name: 'two environments, same mount path',
    yaml: ['version: 1', 'buckets:', '  data:', '    name: data-${environment}', '    mount: {backend: local, path: ./bucket}', ...TWO_ENVS],
    expect: [{ message: 'environments dev and prod both mount at', line: 5, path: 'buckets.data.mount.path' }],
  },
  {
    name: "one environment's path inside another's mount",
    yaml: ['version: 1', 'buckets:', '  data:', '    name: data-${environment}', '    mount:', '      backend: local', '      path: ./bucket-${environment}', 'environments:', '  dev: {}', '  prod:', '    workspace: ./bucket-dev/ws'],
    expect: [{ message: 'workspace of environment prod', line: 11, path: 'environments.prod.workspace' }],
    atLeast: true,
  },
  {
    name: 'three environments, same bucket',
    yaml: ['version: 1', 'buckets:', '  data:', '    name: shared-data', '    mount:', '      backend: local', '      path: ./bucket-${environment}', ...TWO_ENVS, '  qa: {}'],
    expect: [{ message: 'environments dev, prod and qa all use bucket "shared-data"', line: 4, path: 'buckets.data.name' }],
  },
  {
    name: 'isolation is checked even when only one environment is validated',
    yaml: ['version: 1', 'buckets:', '  data:', '    name: shared-data', '    mount:', '      backend: local', '      path: ./bucket-${environment}', ...TWO_ENVS],
    env: 'dev',
    expect: [{ message: 'environments dev and prod both use bucket "shared-data"', line: 4, path: 'buckets.data.name' }],
  },
];

async function problemsOf(testCase: Case): Promise<SpecProblem[]> {
  const text = typeof testCase.yaml === 'string' ? testCase.yaml : `${testCase.yaml.join('\n')}\n`;
  const file = writeSpec(text);
  const input = { file, environment: testCase.env, processEnv: testCase.processEnv ?? {} };
  if (!testCase.load) return (await validateSpec(input)).problems;
  const error = await loadEnvironment(input).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SpecError);
  return (error as SpecError).problems;
}

describe('malformed specs', () => {
  it('has a large table', () => {
    expect(cases.length).toBeGreaterThanOrEqual(45);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, testCase) => {
    const problems = await problemsOf(testCase);
    for (const expected of testCase.expect) {
      const match = problems.find((p) => p.message.includes(expected.message) && p.line === expected.line && p.path === expected.path);
      expect(match, `expected ${JSON.stringify(expected)} among ${JSON.stringify(problems, null, 2)}`).toBeDefined();
      expect(match?.column).toBeGreaterThan(0);
    }
    if (testCase.atLeast) expect(problems.length).toBeGreaterThanOrEqual(testCase.expect.length);
    else expect(problems, JSON.stringify(problems, null, 2)).toHaveLength(testCase.expect.length);
  });
});
