// `persist detach [--target link.x]...`: the way back from a link (seed 000's rollback plan). The
// linked folder becomes a real local folder holding the mount's content: copied exactly beside the
// link (files with modes and times, every folder with its mode, empty ones too, symlinks), every
// file verified by sha256, then the link swapped for the folder (the link renamed aside,
// the folder renamed into place, the old link removed). Nothing in the bucket is deleted. The spec
// still lists the link: remove it there, or the next apply adopts the folder back into the mount.
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline/promises';
import { acquireLock } from '../engine/lock.js';
import { UsageError } from '../errors.js';
import { stateDir } from '../host/paths.js';
import type { Host } from '../host/types.js';
import { copyExactly, type CopyResult } from '../lineage/aside.js';
import { DETACH_CANCELLED, DETACH_QUESTION, detachClosing, detachDone, detachIntro, detachNothing } from '../output/lineage-view.js';
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
    return (await rl.question(DETACH_QUESTION)).trim() === 'yes';
  } finally {
    rl.close();
  }
}

/** The mount's folder copied exactly beside the link (folders and their modes, empty ones too), then swapped in. */
async function detachOne(host: Host, link: ResolvedLink): Promise<CopyResult> {
  const building = `${link.path}.persist-detach-${randomBytes(4).toString('hex')}`;
  const oldLink = `${link.path}.persist-detach-link-${randomBytes(4).toString('hex')}`;
  try {
    const copied = await copyExactly(host, link.target, building);
    await host.fsync(building);
    await host.rename(link.path, oldLink);
    try {
      await host.rename(building, link.path);
    } catch (error) {
      await host.rename(oldLink, link.path);
      throw error;
    }
    await host.remove(oldLink);
    return copied;
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
      io.out(detachNothing(`link.${link.name}`, link.path, link.target));
      continue;
    }
    if (observation.mountReady[link.bucket] !== true) throw new UsageError(`mount.${link.bucket} is not mounted: run persist apply first (detach copies from the mount)`);
    todo.push(link);
  }
  if (todo.length === 0) return 0;
  io.out(`${header(env, 'detach')}\n\n${todo.map((link) => detachIntro(`link.${link.name}`, link.path, link.target)).join('\n')}\n`);
  if (!opts.autoApprove) {
    if (!io.interactive) throw new UsageError('detach needs --auto-approve when not run on a terminal');
    if (!(await confirm())) {
      io.out(DETACH_CANCELLED);
      return 1;
    }
  }
  const host = makeHost(io);
  const release = await acquireLock(host, stateDir(io.env), { spec: env.specFile, environment: env.environment }, 0, 'wait for it to finish, then run this detach again');
  try {
    for (const link of todo) {
      io.out(detachDone(`link.${link.name}`, link.path, await detachOne(host, link)));
    }
    io.out(detachClosing(todo.map((link) => `links.${link.name}`)));
    return 0;
  } finally {
    await release();
  }
}
