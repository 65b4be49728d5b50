// `persist detach [--target link.x]...`: the way back from a link (seed 000's rollback plan). The
// linked folder becomes a real local folder holding the mount's content: copied beside the link,
// every file verified by sha256, then the link swapped for the folder (the link renamed aside,
// the folder renamed into place, the old link removed). Nothing in the bucket is deleted. The spec
// still lists the link: remove it there, or the next apply adopts the folder back into the mount.
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import { join } from 'node:path';
import { acquireLock } from '../engine/lock.js';
import { PersistError, UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { walkFolder } from '../host/walk.js';
import { formatBytes, plural } from '../output/format.js';
import type { ResolvedLink } from '../spec/types.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface DetachOptions extends SpecOptions {
  target?: string[];
  autoApprove?: boolean;
}

async function confirm(): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question("Do you want to detach these links? Only 'yes' will be accepted: ")).trim() === 'yes';
  } finally {
    rl.close();
  }
}

async function detachOne(host: Host, link: ResolvedLink): Promise<{ files: number; bytes: number; skipped: string[] }> {
  const walk = await walkFolder(host, link.target, () => false);
  const building = `${link.path}.persist-detach-${randomBytes(4).toString('hex')}`;
  const oldLink = `${link.path}.persist-detach-link-${randomBytes(4).toString('hex')}`;
  let bytes = 0;
  try {
    await host.mkdir(building);
    for (const [path, file] of Object.entries(walk.files)) {
      const target = join(building, path);
      await host.mkdir(join(target, '..'));
      await host.copyFile(join(link.target, path), target);
      await host.chmod(target, file.mode);
      await host.utimes(target, file.mtimeMs);
      const [a, b] = await Promise.all([host.hashFile(join(link.target, path)), host.hashFile(target)]);
      if (a !== b) throw new PersistError(`link.${link.name}: the copy of ${join(link.target, path)} differs from the mount's file; nothing was changed`);
      bytes += file.size;
    }
    await host.fsync(building);
    await host.rename(link.path, oldLink);
    try {
      await host.rename(building, link.path);
    } catch (error) {
      await host.rename(oldLink, link.path);
      throw error;
    }
    await host.remove(oldLink);
    return { files: Object.keys(walk.files).length, bytes, skipped: walk.skipped };
  } finally {
    await host.remove(building);
  }
}

export default async function detach(opts: DetachOptions, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const reader = makeHost(io, { readOnly: true });
  const targets = opts.target ?? [];
  const known = Object.keys(env.links).map((name) => `link.${name}`);
  for (const target of targets) {
    if (!known.includes(target)) throw new UsageError(`--target ${target}: no link of that name in environment ${env.environment} (known: ${known.join(', ') || 'none'})`);
  }
  const links = Object.values(env.links).filter((link) => targets.length === 0 || targets.includes(`link.${link.name}`));
  const { observation } = await computePlan(reader, env, { allowShrink: false }, []);
  const todo: ResolvedLink[] = [];
  for (const link of links) {
    const info = await reader.lstat(link.path);
    if (info?.type !== 'symlink' || (await reader.readlink(link.path)) !== link.target) {
      io.out(`link.${link.name}: ${link.path} is not a link to ${link.target}; nothing to detach\n`);
      continue;
    }
    if (observation.mountReady[link.bucket] !== true) throw new UsageError(`mount.${link.bucket} is not mounted: run persist apply first (detach copies from the mount)`);
    todo.push(link);
  }
  if (todo.length === 0) return 0;
  io.out(`${header(env, 'detach')}\n\n${todo.map((link) => `link.${link.name}: ${link.path} becomes a local folder with the content of ${link.target} (nothing deleted in the bucket)`).join('\n')}\n`);
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('detach needs --auto-approve when not run on a terminal');
    if (!(await confirm())) {
      io.out('Detach cancelled.\n');
      return 1;
    }
  }
  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment }, 0);
  try {
    for (const link of todo) {
      const done = await detachOne(host, link);
      io.out(`link.${link.name}: detached: ${link.path} is a local folder (${plural(done.files, 'file')}, ${formatBytes(done.bytes)} copied and verified)\n`);
      if (done.skipped.length) io.out(`note: link.${link.name}: not copied (symlinks or special files): ${done.skipped.join(', ')}\n`);
    }
    io.out(`Remove ${todo.map((link) => `links.${link.name}`).join(', ')} from the spec, or the next apply adopts the folder back into the mount.\n`);
    return 0;
  } finally {
    await release();
  }
}
