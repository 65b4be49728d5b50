// Claims within one environment: no two resources may claim the same or nested paths in a mount,
// nor on local disk, and nothing local may lie in a mount or contain one.
import { sep } from 'node:path';
import type { KeyPath } from './load.js';
import type { Part } from './positions.js';

/** A problem at a key path of the environment's merged tree. */
export type Report = (path: KeyPath, message: string, part?: Part) => void;

/** `FILE:LINE` of a key path, so that an overlap names where both resources are written. */
export type Locate = (path: KeyPath) => string;

function both(claim: { address: string; at: KeyPath }, earlier: { address: string; at: KeyPath }, locate?: Locate): string {
  return locate ? ` (${claim.address} at ${locate(claim.at)}, ${earlier.address} at ${locate(earlier.at)})` : '';
}

/** A resource's claim on a path inside a mount. */
export interface MountClaim {
  address: string;
  bucket: string;
  /** Relative paths claimed (a bundle also claims its rotated generations). */
  paths: string[];
  at: KeyPath;
}

/** A resource's claim on a local path. */
export interface LocalClaim {
  address: string;
  kind: 'link' | 'sync' | 'file' | 'repo';
  path: string;
  at: KeyPath;
}

/** A bucket's mount path, as the local claims are checked against it. */
export interface MountPath {
  key: string;
  path: string;
}

/** No two resources may claim the same or nested paths inside one mount. */
export function checkMountClaims(claims: MountClaim[], report: Report, locate?: Locate): void {
  const entries = claims.flatMap((claim, index) => claim.paths.map((path) => ({ key: `${claim.bucket}:${path}`, owner: index })));
  for (const [first, second] of overlappingOwners(entries)) {
    const earlier = claims[first]!;
    const claim = claims[second]!;
    const clash = findOverlap(earlier.paths, claim.paths, posixContains);
    if (clash) report(claim.at, `${claim.address} and ${earlier.address} claim ${describeOverlap(clash, 'in the mount of bucket ' + claim.bucket)}${both(claim, earlier, locate)}`);
  }
}

/**
 * Local claims. Links, syncs and restored files may not share or nest paths with each other.
 * A bundle's repo is different: links and restored files inside the repo's folder are
 * legitimate (the repo ignores or tracks them; the moltbot spec links /root/clawd/memory and
 * restores /root/clawd/.credentials.env inside the repo /root/clawd), and so is a sync of a
 * folder inside it. What is refused is a link, sync or file at the repo itself or around it
 * (it would replace or mirror the whole repo), and two repos that are equal or nested. Nothing
 * local may lie in a mount of the environment, nor contain one.
 */
export function checkLocalClaims(
  claims: LocalClaim[],
  mounts: MountPath[],
  workspace: { path: string; at: KeyPath },
  report: Report,
  locate?: Locate,
): void {
  for (const [first, second] of overlappingOwners(claims.map((claim, index) => ({ key: claim.path, owner: index })))) {
    const earlier = claims[first]!;
    const claim = claims[second]!;
    const repo = claim.kind === 'repo' ? claim : earlier.kind === 'repo' ? earlier : undefined;
    const other = repo === claim ? earlier : claim;
    let clash: Overlap | undefined;
    if (!repo || other.kind === 'repo') clash = findOverlap([earlier.path], [claim.path], pathContains);
    else if (other.path === repo.path || pathContains(other.path, repo.path)) {
      clash = { a: other.path, b: repo.path, relation: other.path === repo.path ? 'same' : 'contains' };
    }
    if (clash) report(claim.at, `${claim.address} and ${earlier.address} claim ${describeOverlap(clash, 'on local disk')}${both(claim, earlier, locate)}`);
  }
  for (const claim of claims) {
    for (const mount of mounts) {
      if (claim.path === mount.path || pathContains(mount.path, claim.path)) {
        report(claim.at, `${claim.address} (${claim.path}) lies in the mount path of bucket ${mount.key} (${mount.path}); local paths must stay outside mounts`);
      } else if (pathContains(claim.path, mount.path)) {
        report(claim.at, `${claim.address} (${claim.path}) contains the mount path of bucket ${mount.key} (${mount.path})`);
      }
    }
  }
  for (const mount of mounts) {
    if (workspace.path === mount.path || pathContains(mount.path, workspace.path)) {
      report(workspace.at, `the workspace ${workspace.path} lies in the mount path of bucket ${mount.key} (${mount.path}); links would be created inside the mount`);
    }
  }
  mounts.forEach((mount, index) => {
    for (const earlier of mounts.slice(0, index)) {
      if (mount.path === earlier.path || pathContains(mount.path, earlier.path) || pathContains(earlier.path, mount.path)) {
        report(['buckets', mount.key, 'mount', 'path'], `buckets ${earlier.key} and ${mount.key} have the same or nested mount paths (${earlier.path}, ${mount.path})`);
      }
    }
  });
}

/**
 * Pairs of owners [earlier, later] whose keys (paths) are equal or nested, in the order a
 * comparison of every pair would find them, but found by sorting: with '/' sorted before every
 * other character, everything inside a path comes right after it. O(n log n) instead of O(n²).
 */
function overlappingOwners(entries: { key: string; owner: number }[]): [number, number][] {
  const sorted = entries.map((e) => ({ key: e.key.replaceAll('/', '\u0000'), owner: e.owner })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const pairs = new Map<string, [number, number]>();
  for (let a = 0; a < sorted.length; a++) {
    const outer = sorted[a]!;
    const prefix = outer.key.endsWith('\u0000') ? outer.key : `${outer.key}\u0000`;
    for (let b = a + 1; b < sorted.length; b++) {
      const inner = sorted[b]!;
      if (inner.key !== outer.key && !inner.key.startsWith(prefix)) break;
      if (inner.owner === outer.owner) continue;
      const pair: [number, number] = outer.owner < inner.owner ? [outer.owner, inner.owner] : [inner.owner, outer.owner];
      pairs.set(`${pair[0]},${pair[1]}`, pair);
    }
  }
  return [...pairs.values()].sort((x, y) => x[1] - y[1] || x[0] - y[0]);
}

interface Overlap {
  a: string;
  b: string;
  relation: 'same' | 'contains' | 'inside';
}

function findOverlap(first: string[], second: string[], contains: (outer: string, inner: string) => boolean): Overlap | undefined {
  for (const a of first) {
    for (const b of second) {
      if (a === b) return { a, b, relation: 'same' };
      if (contains(a, b)) return { a, b, relation: 'contains' };
      if (contains(b, a)) return { a, b, relation: 'inside' };
    }
  }
  return undefined;
}

function describeOverlap(overlap: Overlap, where: string): string {
  if (overlap.relation === 'same') return `the same path ${where}: ${overlap.a}`;
  return `nested paths ${where}: ${overlap.a} and ${overlap.b}`;
}

function posixContains(outer: string, inner: string): boolean {
  return inner.startsWith(`${outer}/`);
}

/** Whether absolute path `inner` lies strictly inside `outer`. */
export function pathContains(outer: string, inner: string): boolean {
  const prefix = outer.endsWith(sep) ? outer : `${outer}${sep}`;
  return inner.startsWith(prefix);
}
