// Shared set-up for the sync and file tests: a temporary machine with a `local` bucket.
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ActionContext } from '../../src/engine/apply.js';
import type { PlanOptions } from '../../src/engine/types.js';
import type { Host } from '../../src/host/types.js';
import type { ResolvedEnvironment, ResolvedFile, ResolvedSync } from '../../src/spec/types.js';

export function environment(mountPath: string, extra: { syncs?: Record<string, ResolvedSync>; files?: Record<string, ResolvedFile>; backend?: 's3fs' | 'local'; bucketName?: string } = {}): ResolvedEnvironment {
  return {
    specFile: '/spec/persist.yaml',
    specHash: '0'.repeat(64),
    environment: 'test',
    workspace: '/spec',
    buckets: {
      data: { key: 'data', name: extra.bucketName ?? 'test-bucket', pathStyle: true, provider: 'other', mount: { backend: extra.backend ?? 'local', path: mountPath, options: {} } },
    },
    links: {},
    bundles: {},
    syncs: extra.syncs ?? {},
    files: extra.files ?? {},
  };
}

export function applyContext(host: Host, env: ResolvedEnvironment, options: PlanOptions = { allowShrink: false }, signal = new AbortController().signal): ActionContext & { reports: string[] } {
  const reports: string[] = [];
  return { host, env, options, report: (m) => reports.push(m), signal, reports };
}

export interface Snapshot {
  [path: string]: { ino: number; mtimeMs: number; mode: number; sha256: string; size: number };
}

/** Every file below `root` with inode, mtime, mode and content hash: equal snapshots mean nothing was written. */
export async function snapshot(root: string, prefix = ''): Promise<Snapshot> {
  const result: Snapshot = {};
  for (const name of (await readdir(root)).sort()) {
    const path = join(root, name);
    const info = await lstat(path);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (info.isDirectory()) Object.assign(result, await snapshot(path, rel));
    else {
      const data = info.isFile() ? await readFile(path) : Buffer.alloc(0);
      result[rel] = { ino: info.ino, mtimeMs: info.mtimeMs, mode: info.mode & 0o7777, sha256: createHash('sha256').update(data).digest('hex'), size: info.size };
    }
  }
  return result;
}
