// `persist status`: the health of every resource, read-only. Each line says whether the resource
// matches the spec (else the action a plan would take) and the facts an operator asks about:
// mount alive and what is mounted, where a link points, bundle refs, age and size, last sync times.
import { readBundleHeader } from '../resources/bundle/header.js';
import { mountAt } from '../host/mountinfo.js';
import { RealHost } from '../host/real.js';
import type { Host } from '../host/types.js';
import { readOnlyHost } from '../host/wrappers.js';
import { makeStyle } from '../output/style.js';
import { syncStatus } from '../resources/sync/index.js';
import type { ResolvedEnvironment } from '../spec/types.js';
import { computePlan, header, loadSpec } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

type Facts = Record<string, string | number | boolean | null>;

function age(fromMs: number, now: Date): string {
  const seconds = Math.max(0, Math.round((now.getTime() - fromMs) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

async function facts(kind: string, name: string, env: ResolvedEnvironment, host: Host, mountReady: Record<string, boolean>): Promise<Facts> {
  switch (kind) {
    case 'mount': {
      const bucket = env.buckets[name]!;
      const result: Facts = { backend: bucket.mount.backend, bucket: bucket.name, path: bucket.mount.path };
      if (bucket.mount.backend !== 'local') {
        const entry = mountAt(await host.mounts(), bucket.mount.path);
        result.mounted = entry ? `${entry.fsType} ${entry.source}` : null;
        if (entry) {
          const probe = await host.probe(bucket.mount.path, 5000);
          result.alive = probe.state === 'ok';
          if (probe.state === 'dead') result.problem = probe.reason;
        }
      }
      return result;
    }
    case 'link': {
      const link = env.links[name]!;
      const info = await host.lstat(link.path);
      return { path: link.path, target: link.target, is: info?.type === 'symlink' ? `-> ${await host.readlink(link.path)}` : (info?.type ?? 'missing') };
    }
    case 'bundle': {
      const bundle = env.bundles[name]!;
      if (!mountReady[bundle.bucket]) return { repo: bundle.repo, file: bundle.file, bundle: 'unknown (mount not ready)' };
      const info = await host.lstat(bundle.file);
      if (!info) return { repo: bundle.repo, file: bundle.file, bundle: 'missing' };
      const result: Facts = { repo: bundle.repo, file: bundle.file, size: info.size, age: age(info.mtimeMs, host.now()) };
      try {
        const head = await readBundleHeader(host, bundle.file);
        result.refs = head.refs.filter((r) => r.name !== 'HEAD').length;
        result.head = head.refs.find((r) => r.name === 'HEAD')?.sha.slice(0, 12) ?? null;
      } catch (error) {
        result.problem = error instanceof Error ? error.message : String(error);
      }
      return result;
    }
    case 'sync': {
      const sync = env.syncs[name]!;
      if (!mountReady[sync.bucket]) return { from: sync.from, to: sync.to, mirror: 'unknown (mount not ready)' };
      const status = await syncStatus(sync, host);
      return { from: sync.from, to: sync.to, lastPush: status.lastPush, lastRestore: status.lastRestore, files: status.files };
    }
    case 'file': {
      const file = env.files[name]!;
      const info = await host.lstat(file.to);
      return { to: file.to, from: file.from, mode: info ? `0${info.mode.toString(8)}` : null };
    }
    default:
      return {};
  }
}

export default async function status(opts: SpecOptions, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const host = readOnlyHost(new RealHost());
  const { observation } = await computePlan(host, env, { allowShrink: false }, []);
  const rows = await Promise.all(
    observation.resources.map(async (r) => {
      const [kind, ...rest] = r.address.split('.');
      return {
        address: r.address,
        ok: r.diff === null,
        state: r.diff === null ? 'ok' : r.diff.conflict ? `conflict: ${r.diff.conflict.message}` : `needs ${r.diff.action}: ${r.diff.reason}`,
        facts: await facts(kind!, rest.join('.'), env, host, observation.mountReady),
      };
    }),
  );
  if (opts.json) {
    io.out(`${JSON.stringify({ formatVersion: 1, environment: env.environment, resources: rows }, null, 2)}\n`);
  } else {
    const style = makeStyle(io.color);
    const lines = rows.map((row) => {
      const mark = row.ok ? style.green('ok ') : style.yellow('!! ');
      const details = Object.entries(row.facts)
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join('  ');
      return `${mark} ${style.bold(row.address)}  ${row.ok ? '' : `${row.state}\n      `}${details}`;
    });
    io.out(`${header(env, 'status')}\n\n${lines.join('\n')}\n`);
  }
  return 0; // status reports; drift is not an error (use `plan --detailed-exitcode` to test for it)
}
