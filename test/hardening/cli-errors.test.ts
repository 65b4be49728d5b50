// Bad command-line input to the built CLI, as a real process: each mistake gets a clear message on
// stderr naming what is wrong, exit code 1, and never a stack trace (unless --debug asks for one).
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runPersist, STACK_FRAME, tempDir, type RunResult } from './helpers.js';

let dir: string;
let env: Record<string, string>;

const LOCAL_SPEC = `version: 1
workspace: ./ws
buckets:
  data:
    name: hardening
    mount: { backend: local, path: ./bucket }
links:
  memory: workspace/memory
`;

const ENVIRONMENTS_SPEC = `version: 1
defaultEnvironment: development
buckets:
  data:
    name: data-\${environment}
    mount: { backend: local, path: "./bucket-\${environment}" }
links:
  memory: workspace/memory
environments:
  development: {}
  production: {}
`;

beforeAll(() => {
  dir = tempDir();
  env = { PERSIST_STATE_DIR: join(dir, 'state') };
  writeFileSync(join(dir, 'persist.yaml'), LOCAL_SPEC);
  writeFileSync(join(dir, 'envs.yaml'), ENVIRONMENTS_SPEC);
});

function persist(args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
  return runPersist(args, { cwd: dir, env: { ...env, ...extraEnv } });
}

/** Exit 1, the message on stderr, no stack trace, and at most `maxLines` lines. */
function expectClearError(result: RunResult, message: RegExp, maxLines = 2): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(1);
  expect(result.stderr.trimEnd()).toMatch(message);
  expect(result.stderr).not.toMatch(STACK_FRAME);
  expect(result.stderr).not.toContain('internal error');
  expect(result.stdout).not.toMatch(STACK_FRAME);
  expect(result.stderr.trimEnd().split('\n').length).toBeLessThanOrEqual(maxLines);
}

describe('command line mistakes', () => {
  it('an unknown global flag', async () => {
    expectClearError(await persist(['--bogus']), /unknown option '--bogus'/);
  });

  it('an unknown command', async () => {
    expectClearError(await persist(['frobnicate']), /unknown command 'frobnicate'/);
  });

  it('an unknown flag of a command', async () => {
    expectClearError(await persist(['plan', '--frob']), /unknown option '--frob'/);
  });

  it('watch without --interval', async () => {
    expectClearError(await persist(['watch']), /required option '--interval <duration>' not specified/);
  });

  it('a bad --lock-timeout', async () => {
    expectClearError(await persist(['apply', '--auto-approve', '--lock-timeout', '5x']), /^persist: --lock-timeout: "5x" is not a duration/);
  });

  it('a bad --interval, and one too short', async () => {
    expectClearError(await persist(['watch', '--interval', 'abc']), /^persist: --interval: "abc" is not a duration/);
    expectClearError(await persist(['watch', '--interval', '10ms']), /^persist: --interval must be at least 1s/);
  });

  it('an unknown --target lists the real addresses', async () => {
    expectClearError(
      await persist(['plan', '--target', 'link.nope']),
      /^persist: unknown --target "link.nope"; the spec's resources are: link.memory, mount.data$/m,
    );
  });

  it('apply without a terminal needs --auto-approve', async () => {
    expectClearError(await persist(['apply']), /^persist: apply needs --auto-approve or a saved plan file when not run on a terminal$/m);
  });
});

describe('spec files that cannot be used', () => {
  it('a missing spec file', async () => {
    expectClearError(await persist(['plan', '-f', 'missing.yaml']), /^persist: spec file missing.yaml does not exist \(give one with -f, or set PERSIST_SPEC\)$/);
  });

  it('a missing spec named by $PERSIST_SPEC', async () => {
    expectClearError(await persist(['status'], { PERSIST_SPEC: 'elsewhere.yaml' }), /spec file elsewhere.yaml does not exist/);
  });

  it('a spec that is a folder', async () => {
    mkdirSync(join(dir, 'folder.yaml'), { recursive: true });
    expectClearError(await persist(['validate', '-f', 'folder.yaml']), /^persist: spec file folder.yaml is a directory, expected a YAML file$/);
  });

  it('a spec path that goes through a file', async () => {
    expectClearError(await persist(['plan', '-f', 'persist.yaml/inner.yaml']), /^persist: cannot read spec file persist.yaml\/inner.yaml: .*ENOTDIR/);
  });

  it('a spec the user may not read', async () => {
    // Root reads anything: drop to nobody for this run, in a folder nobody can enter.
    const open = tempDir();
    chmodSync(open, 0o755);
    const spec = join(open, 'secret.yaml');
    writeFileSync(spec, LOCAL_SPEC);
    chmodSync(spec, 0o000);
    const result = await runPersist(['validate', '-f', spec], {
      cwd: open,
      env: { PERSIST_STATE_DIR: join(open, 'state') },
      wrapper: process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : undefined,
    });
    expectClearError(result, new RegExp(`^persist: cannot read spec file ${spec}: EACCES: permission denied`));
  });

  it('a spec that is not YAML names the line and column', async () => {
    writeFileSync(join(dir, 'broken.yaml'), 'version: 1\nbuckets:\n  data: [unclosed\n');
    const result = await persist(['plan', '-f', 'broken.yaml']);
    expectClearError(result, /^broken.yaml:\d+:\d+: /, 5);
  });

  it('an unknown environment from --env lists the known ones', async () => {
    expectClearError(await persist(['plan', '-f', 'envs.yaml', '--env', 'prod']), /environments: unknown environment "prod" \(from --env\); known: development, production$/m);
  });

  it('an unknown environment from $ENVIRONMENT says where it came from', async () => {
    expectClearError(await persist(['status', '-f', 'envs.yaml'], { ENVIRONMENT: 'staging' }), /unknown environment "staging" \(from \$ENVIRONMENT\); known: development, production$/m);
  });

  it('--env on a spec without environments', async () => {
    expectClearError(await persist(['plan', '--env', 'production']), /unknown environment "production" \(from --env\): the spec declares no environments, so its only environment is "default"/);
  });
});

describe('saved plans that must not be applied', () => {
  let planText: string;

  beforeAll(async () => {
    const made = await persist(['plan', '--out', 'good.plan']);
    expect(made.code).toBe(0);
    planText = readFileSync(join(dir, 'good.plan'), 'utf8');
  });

  it('a missing plan file', async () => {
    expectClearError(await persist(['apply', 'nothing.plan']), /^persist: nothing.plan: cannot read the saved plan \(no such file\)$/);
  });

  it('a plan file that is a folder', async () => {
    mkdirSync(join(dir, 'folder.plan'), { recursive: true });
    expectClearError(await persist(['apply', 'folder.plan']), /^persist: folder.plan: cannot read the saved plan \(it is a directory\)$/);
  });

  it('a truncated plan', async () => {
    writeFileSync(join(dir, 'truncated.plan'), planText.slice(0, Math.floor(planText.length / 2)));
    expectClearError(await persist(['apply', 'truncated.plan']), /^persist: truncated.plan: not a saved plan \(it is not valid JSON; was it truncated\?\)$/);
  });

  it('an empty plan file', async () => {
    writeFileSync(join(dir, 'empty.plan'), '');
    expectClearError(await persist(['apply', 'empty.plan']), /^persist: empty.plan: not a saved plan/);
  });

  it('a JSON file that is not a plan', async () => {
    writeFileSync(join(dir, 'other.plan'), '{"kind":"something-else"}\n');
    expectClearError(await persist(['apply', 'other.plan']), /^persist: other.plan: not a saved plan \(write one with `persist plan --out other.plan`\)$/);
  });

  it('a tampered plan (an action changed by hand)', async () => {
    const plan = JSON.parse(planText) as { actions: { reason: string }[] };
    plan.actions[0]!.reason = 'trust me';
    writeFileSync(join(dir, 'tampered.plan'), JSON.stringify(plan, null, 2));
    expectClearError(await persist(['apply', 'tampered.plan']), /^persist: tampered.plan: the saved plan was modified after it was written \(checksum mismatch\)/);
  });

  it('a plan from a newer format', async () => {
    writeFileSync(join(dir, 'future.plan'), planText.replace('"formatVersion": 1', '"formatVersion": 9'));
    expectClearError(await persist(['apply', 'future.plan']), /^persist: future.plan: saved plan format 9 is not supported \(expected 1\)$/);
  });

  it('a stale plan names the resources that changed since', async () => {
    const stale = tempDir();
    writeFileSync(join(stale, 'persist.yaml'), LOCAL_SPEC);
    const state = { PERSIST_STATE_DIR: join(stale, 'state') };
    expect((await runPersist(['plan', '--out', 'p.plan'], { cwd: stale, env: state })).code).toBe(0);
    mkdirSync(join(stale, 'ws', 'memory'), { recursive: true });
    writeFileSync(join(stale, 'ws', 'memory', 'note.md'), 'written after the plan\n');
    const result = await runPersist(['apply', 'p.plan'], { cwd: stale, env: state });
    expectClearError(result, /^persist: p.plan: the plan is stale; these resources changed since it was made: link.memory\. Run `persist plan --out` again\.$/);
    expect(readFileSync(join(stale, 'ws', 'memory', 'note.md'), 'utf8')).toBe('written after the plan\n');
  });

  it('a plan made for another environment', async () => {
    expect((await persist(['plan', '-f', 'envs.yaml', '--env', 'development', '--out', 'dev.plan'])).code).toBe(0);
    expectClearError(await persist(['apply', 'dev.plan', '--env', 'production']), /^persist: dev.plan: the plan was made for environment "development", not "production"$/);
  });

  it('a plan whose spec changed since', async () => {
    const changed = tempDir();
    writeFileSync(join(changed, 'persist.yaml'), LOCAL_SPEC);
    const state = { PERSIST_STATE_DIR: join(changed, 'state') };
    expect((await runPersist(['plan', '--out', 'p.plan'], { cwd: changed, env: state })).code).toBe(0);
    writeFileSync(join(changed, 'persist.yaml'), `${LOCAL_SPEC}  notes: workspace/notes\n`);
    expectClearError(await runPersist(['apply', 'p.plan'], { cwd: changed, env: state }), /^persist: p.plan: the spec .*persist.yaml changed since the plan was made/);
  });

  it('--target together with a saved plan', async () => {
    expectClearError(await persist(['apply', 'good.plan', '--target', 'link.memory']), /^persist: --target cannot be combined with a saved plan/);
  });
});

describe('the apply lock', () => {
  it('a second apply fails after --lock-timeout, naming the holder', async () => {
    const locked = tempDir();
    writeFileSync(join(locked, 'persist.yaml'), LOCAL_SPEC);
    const stateDir = join(locked, 'state');
    mkdirSync(stateDir, { recursive: true });
    // This test process is alive: its pid makes the lock current, not stale.
    const holder = { pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z', spec: join(locked, 'persist.yaml'), environment: 'default' };
    writeFileSync(join(stateDir, 'apply.lock'), `${JSON.stringify(holder)}\n`);
    const started = Date.now();
    const result = await runPersist(['apply', '--auto-approve', '--lock-timeout', '700ms'], { cwd: locked, env: { PERSIST_STATE_DIR: stateDir } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^persist: another apply holds the lock ${stateDir}/apply.lock: pid ${process.pid} \\(started 2026-01-01T00:00:00.000Z, environment "default"\\)`));
    expect(result.stderr).not.toMatch(STACK_FRAME);
    // Nothing was done: the link is still missing.
    expect(() => readFileSync(join(locked, 'ws', 'memory'))).toThrow();
  });
});

describe('--debug', () => {
  it('adds the stack trace to the same message', async () => {
    const result = await persist(['--debug', 'apply', '--auto-approve', '--lock-timeout', '5x']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^persist: --lock-timeout: "5x" is not a duration/);
    expect(result.stderr).toMatch(STACK_FRAME);
  });

  it('shows no stack when there is no error', async () => {
    const result = await persist(['--debug', 'validate']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
  });
});
