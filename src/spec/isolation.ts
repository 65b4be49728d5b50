// Isolation across all environments of the file: no two environments may use the same bucket
// (name and endpoint) or the same or nested mount paths, and no local path of one may point into
// another's mount.
import { pathContains } from './claims.js';
import type { Place } from './positions.js';

/** What the isolation check across environments needs from one environment. */
export interface IsolationFacts {
  /** `prefix` normalised (`a/b/` or ''). */
  buckets: { key: string; name: string; endpoint?: string; prefix?: string; place: Place }[];
  mounts: { key: string; path: string; place: Place }[];
  localPaths: { label: string; path: string; place: Place }[];
}

export interface EnvironmentProblem {
  place: Place;
  message: string;
}

/** Values that could not be resolved (a missing variable) are left out of the facts. */
export function isolationProblems(outcomes: { name: string; facts: IsolationFacts }[]): EnvironmentProblem[] {
  const problems: EnvironmentProblem[] = [];
  const sharing = <T extends { place: Place }>(pick: (facts: IsolationFacts) => T[], identity: (item: T) => string, describe: (names: string, item: T) => string) => {
    const groups = new Map<string, { environments: Set<string>; items: T[] }>();
    for (const outcome of outcomes) {
      for (const item of pick(outcome.facts)) {
        const group = groups.get(identity(item)) ?? { environments: new Set<string>(), items: [] };
        group.environments.add(outcome.name);
        group.items.push(item);
        groups.set(identity(item), group);
      }
    }
    for (const { environments, items } of groups.values()) {
      if (environments.size < 2) continue;
      const names = `${listNames([...environments])} ${environments.size === 2 ? 'both' : 'all'}`;
      for (const item of items) problems.push({ place: item.place, message: describe(names, item) });
    }
  };
  // The unit is (bucket, endpoint, prefix): environments may share a bucket under different
  // prefixes, never the same or nested ones.
  sharing(
    (facts) => facts.buckets,
    (bucket) => `${bucket.name}\u0000${bucket.endpoint ?? ''}\u0000${bucket.prefix ?? ''}`,
    (names, bucket) =>
      `environments ${names} use bucket "${bucket.name}"${bucket.endpoint ? ` at ${bucket.endpoint}` : ''}${bucket.prefix ? ` under prefix "${bucket.prefix}"` : ''}; each environment needs its own bucket or prefix (use \${environment} in the name or the prefix)`,
  );
  outcomes.forEach((b, index) => {
    for (const a of outcomes.slice(0, index)) {
      for (const bucketB of b.facts.buckets) {
        const nested = a.facts.buckets.find(
          (bucketA) =>
            bucketA.name === bucketB.name &&
            (bucketA.endpoint ?? '') === (bucketB.endpoint ?? '') &&
            (bucketA.prefix ?? '') !== (bucketB.prefix ?? '') &&
            ((bucketB.prefix ?? '').startsWith(bucketA.prefix ?? '') || (bucketA.prefix ?? '').startsWith(bucketB.prefix ?? '')),
        );
        if (nested) {
          const show = (prefix: string | undefined) => (prefix ? `"${prefix}"` : 'the bucket root');
          problems.push({
            place: bucketB.place,
            message: `environments ${a.name} and ${b.name} use nested prefixes of bucket "${bucketB.name}" (${show(nested.prefix)}, ${show(bucketB.prefix)}); one would see the other's keys`,
          });
        }
      }
    }
  });
  sharing(
    (facts) => facts.mounts,
    (mount) => mount.path,
    (names, mount) => `environments ${names} mount at ${mount.path}; each environment needs its own mount path`,
  );
  outcomes.forEach((b, index) => {
    for (const a of outcomes.slice(0, index)) {
      for (const mountB of b.facts.mounts) {
        const nested = a.facts.mounts.find((mountA) => pathContains(mountA.path, mountB.path) || pathContains(mountB.path, mountA.path));
        if (nested) problems.push({ place: mountB.place, message: `environments ${a.name} and ${b.name} have nested mount paths (${nested.path}, ${mountB.path})` });
      }
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        for (const local of from.facts.localPaths) {
          const mount = to.facts.mounts.find((m) => local.path === m.path || pathContains(m.path, local.path));
          if (mount) {
            problems.push({
              place: local.place,
              message: `${local.label} of environment ${from.name} (${local.path}) points into the mount path of environment ${to.name} (${mount.path})`,
            });
          }
        }
      }
    }
  });
  return problems;
}

/** `a and b`, `a, b and c`. */
function listNames(names: string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
}
