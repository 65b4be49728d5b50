// A stand-in for `persist apply` with one bundle on a local bucket, bundled by the rotation kill
// test (esbuild), so that the test kills a real separate process at an exact step:
//   node driver.cjs apply ROOT [KILL_AT]   plan and apply bundle.repo; with KILL_AT, the process
//                                          SIGKILLs itself right before its KILL_AT-th write in ROOT
//   node driver.cjs slots ROOT             prints which generation each bundle file holds (JSON)
// ROOT holds `repo/` (the git repo) and `mount/` (the bucket); PERSIST_STATE_DIR is the state folder.
import { join } from 'node:path';
import { RealHost } from '../../src/host/real.js';
import type { Host } from '../../src/host/types.js';
import { bundleModule } from '../../src/resources/bundle/index.js';
import { readBundleSlots } from '../../src/resources/bundle/generations.js';
import type { ResolvedBundle, ResolvedEnvironment } from '../../src/spec/types.js';
import { storesFor } from '../../src/store/index.js';

const WRITES = new Set(['mkdir', 'writeFile', 'writeFileAtomic', 'copyFile', 'symlink', 'rename', 'remove', 'chmod', 'utimes', 'fsync']);

/** The real host, killed (SIGKILL, no cleanup runs) right before its `killAt`-th write under `root` (the bucket, the state folder, the repo). */
function killingHost(inner: Host, killAt: number, root: string): Host {
  let writes = 0;
  return new Proxy(inner, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      if (!WRITES.has(String(name))) return value.bind(target);
      return (...args: unknown[]) => {
        if (args.some((arg) => typeof arg === 'string' && arg.startsWith(`${root}/`))) writes += 1;
        if (writes === killAt) process.kill(process.pid, 'SIGKILL');
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

const [command, root, killAtText] = process.argv.slice(2);
if ((command !== 'apply' && command !== 'slots') || !root) {
  console.error('usage: bundle-driver apply|slots ROOT [KILL_AT]');
  process.exit(2);
}
const mount = join(root, 'mount');
const bundle: ResolvedBundle = { name: 'repo', bucket: 'data', repo: join(root, 'repo'), relFile: 'repo.bundle', file: join(mount, 'repo.bundle'), keep: 2 };
const env: ResolvedEnvironment = {
  specFile: join(root, 'persist.yaml'),
  specHash: '0',
  environment: 'test',
  workspace: root,
  buckets: { data: { key: 'data', name: 'crash-data', pathStyle: true, provider: 'other', mount: { backend: 'local', path: mount, options: {} } } },
  links: {},
  bundles: { repo: bundle },
  syncs: {},
  files: {},
};
const real = new RealHost();
const host = killAtText ? killingHost(real, Number(killAtText), root) : real;
const store = storesFor(env, host);

async function main(): Promise<void> {
if (command === 'slots') {
  const slots = await readBundleSlots(store('data'), bundle);
  console.log(JSON.stringify({ kept: slots.kept.map((slot) => ({ rotation: slot.rotation, generation: slot.record?.generation ?? null })), pending: slots.pending !== null }));
} else {
  const seen = await bundleModule.observe(bundle, { host, env, mountReady: { data: true }, store });
  const decision = bundleModule.diff(bundle, seen.state, { allowShrink: false });
  if (decision === null) console.log('No changes.');
  else if (decision.conflict) {
    console.log(`conflict: ${decision.reason}`);
    process.exit(3);
  } else {
    const outcome = await bundleModule.apply(bundle, decision, seen, { host, env, options: { allowShrink: false }, store, report: () => {}, signal: new AbortController().signal });
    console.log(`${decision.action}: ${outcome.summary}`);
  }
}
}

// One CommonJS file (like the CLI's build): dependencies loaded with import() resolve inside it.
void main();
