// Errors that point at the cause: a wrong indentation is one problem with its consequences folded
// under it, a typo of a key within edit distance 2 gets "did you mean", and an overlap between two
// resources names where each of them is written. Exact messages.
import { describe, expect, it } from 'vitest';
import { formatProblem, SpecError } from '../../src/errors.js';
import { loadEnvironment, validateSpec } from '../../src/spec/index.js';
import { closestKey, editDistance } from '../../src/spec/validate.js';
import { writeSpec } from './helpers.js';

const OUTDENTED_MOUNT = [
  'version: 1',
  'buckets:',
  '  data:',
  '    name: agent-data',
  '  mount:', // two spaces too far left: a bucket named "mount"
  '    backend: local',
  '    path: ./bucket',
  'links:',
  '  memory: workspace/memory',
  '  notes: workspace/notes',
  '  logs: workspace/logs',
  'bundles:',
  '  repo: { repo: ./repo, file: repo.bundle }',
  'syncs:',
  '  state: { from: ./state, to: state }',
  '  cfg: { from: ./cfg, to: cfg }',
  '',
].join('\n');

describe('a structure error is reported as the cause', () => {
  it('folds the 10 problems of an outdented mount: under the one that causes them', async () => {
    const file = writeSpec(OUTDENTED_MOUNT);
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems).toHaveLength(1);
    const [cause] = problems;
    expect(cause).toMatchObject({
      line: 5,
      column: 3,
      path: 'buckets.mount',
      message: '"mount" is indented as a bucket of its own, but it is a key of a bucket: indent it under bucket "data" above it',
    });
    expect(cause!.consequences!.map((c) => `${c.line}: ${c.path}: ${c.message}`)).toEqual([
      '3: buckets.data: bucket data has no mount:, so it is reached through its S3 API, which needs credentials (accessKeyId and secretAccessKey); add them, or add mount:',
      '5: buckets.mount: missing required key "name"',
      '6: buckets.mount.backend: unknown key "backend"; expected one of: name, endpoint, region, pathStyle, provider, credentials, prefix, mount, lease',
      '7: buckets.mount.path: unknown key "path"; expected one of: name, endpoint, region, pathStyle, provider, credentials, prefix, mount, lease',
      '9: links.memory: bucket: is required because the spec has 2 buckets (data, mount)',
      '10: links.notes: bucket: is required because the spec has 2 buckets (data, mount)',
      '11: links.logs: bucket: is required because the spec has 2 buckets (data, mount)',
      '13: bundles.repo: bucket: is required because the spec has 2 buckets (data, mount)',
      '15: syncs.state: bucket: is required because the spec has 2 buckets (data, mount)',
      '16: syncs.cfg: bucket: is required because the spec has 2 buckets (data, mount)',
    ]);
    expect(formatProblem(cause!)).toBe(
      [
        `${file}:5:3: buckets.mount: "mount" is indented as a bucket of its own, but it is a key of a bucket: indent it under bucket "data" above it`,
        '  10 problems follow from it:',
        `    ${file}:3:3: buckets.data: bucket data has no mount:, so it is reached through its S3 API, which needs credentials (accessKeyId and secretAccessKey); add them, or add mount:`,
        `    ${file}:5:3: buckets.mount: missing required key "name"`,
        `    ${file}:6:5: buckets.mount.backend: unknown key "backend"; expected one of: name, endpoint, region, pathStyle, provider, credentials, prefix, mount, lease`,
        '    ... and 7 more',
      ].join('\n'),
    );
  });

  it('keeps problems the mistake does not explain as problems of their own', async () => {
    const file = writeSpec(OUTDENTED_MOUNT.replace('  cfg: { from: ./cfg, to: cfg }', '  cfg: { from: ./cfg, to: cfg, delet: true }'));
    const error = await loadEnvironment({ file, processEnv: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    const problems = (error as SpecError).problems;
    expect(problems.map((p) => `${p.line}: ${p.path}: ${p.message.split('\n')[0]}`)).toEqual([
      '5: buckets.mount: "mount" is indented as a bucket of its own, but it is a key of a bucket: indent it under bucket "data" above it',
      '16: syncs.cfg.delet: unknown key "delet" (did you mean "delete"?); expected one of: from, to, bucket, delete, exclude, maxDeleteRatio, keep',
    ]);
  });

  it('leaves a bucket that is really named like a bucket key alone', async () => {
    const file = writeSpec(['version: 1', 'buckets:', '  mount:', '    name: agent-data', '    mount: { backend: local, path: ./bucket }', ''].join('\n'));
    expect((await validateSpec({ file, processEnv: {} })).problems).toEqual([]);
  });
});

describe('did you mean', () => {
  it('names the allowed key within edit distance 2', async () => {
    const file = writeSpec(['version: 1', 'buckets:', '  data:', '    name: agent-data', '    mount: { backend: local, path: ./bucket }', 'link:', '  memory: workspace/memory', ''].join('\n'));
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems.map(formatProblem)).toEqual([
      `${file}:6:1: link: unknown key "link" (did you mean "links"?); expected one of: version, defaultEnvironment, workspace, buckets, links, bundles, syncs, files, environments`,
    ]);
  });

  it('says nothing when no key is that close', () => {
    expect(closestKey('colour', ['name', 'endpoint', 'region'])).toBeUndefined();
    expect(closestKey('exlude', ['from', 'to', 'exclude'])).toBe('exclude');
    expect(closestKey('Backend', ['backend', 'path'])).toBe('backend');
    expect(closestKey('to', ['to2', 'from'])).toBe('to2');
    expect(closestKey('x', ['to'])).toBeUndefined(); // distance 2 but the whole key: no guess
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('an overlap names both resources', () => {
  it("gives the file and line of each resource's claim", async () => {
    const file = writeSpec(
      ['version: 1', 'buckets:', '  data:', '    name: agent-data', '    mount: { backend: local, path: ./bucket }', 'links:', '  memory: workspace/memory', 'bundles:', '  repo: { repo: ./repo, file: workspace/memory/x.bundle }', ''].join('\n'),
    );
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems.map(formatProblem)).toEqual([
      `${file}:9:31: bundles.repo.file: bundle.repo and link.memory claim nested paths in the mount of bucket data: workspace/memory and workspace/memory/x.bundle (bundle.repo at ${file}:9, link.memory at ${file}:7)`,
    ]);
  });

  it('on local disk too', async () => {
    const file = writeSpec(['version: 1', 'buckets:', '  data:', '    name: agent-data', '    mount: { backend: local, path: ./bucket }', 'syncs:', '  state: {from: ./state, to: state}', 'files:', '  state: {from: state.txt, to: ./state}', ''].join('\n'));
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems.map(formatProblem)).toEqual([
      `${file}:9:32: files.state.to: file.state and sync.state claim the same path on local disk: ${file.replace(/persist\.yaml$/, 'state')} (file.state at ${file}:9, sync.state at ${file}:7)`,
    ]);
  });
});

describe('credentials written with a variable that is not set', () => {
  it('are reported once, where the variable is written: not also as credentials missing', async () => {
    const file = writeSpec(['version: 1', 'buckets:', '  data:', '    name: agent-data', '    credentials:', '      accessKeyId: ${env:QA_AK}', '      secretAccessKey: ${env:QA_SK}', 'syncs:', '  state: { from: ./state, to: state }', ''].join('\n'));
    const { problems } = await validateSpec({ file, processEnv: {} });
    expect(problems.map((p) => `${p.line}: ${p.path}`)).toEqual(['6: buckets.data.credentials.accessKeyId', '7: buckets.data.credentials.secretAccessKey']);
    expect(problems.map((p) => p.message).join('\n')).not.toContain('needs credentials');
  });
});
