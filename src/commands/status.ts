// `persist status`: the health of every resource, read-only. Each line says whether the resource
// matches the spec (else the action a plan would take) and the facts its module reports (mount
// alive and what is mounted, where a link points, bundle refs, age and size, last sync times),
// then what persist left in the buckets that `persist clean` removes.
import { StoreError } from '../errors.js';
import { killedRunFolders, statusJson, renderStatus, type StatusRow } from '../output/status-view.js';
import { makeStyle } from '../output/style.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import { cleanCommand, findIncompleteUploads, findLeftovers, renderIncompleteUploads, renderLeftovers } from './leftovers.js';
import { leaseRows } from './status-lease.js';
import { deadBuildings } from '../host/state-leftovers.js';
import { stateDir } from '../host/paths.js';
import type { CommandIO, SpecOptions } from './types.js';

export default async function status(opts: SpecOptions, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const host = makeHost(io, { readOnly: true });
  const { observation } = await computePlan(host, env, { allowShrink: false }, []);
  const rows: StatusRow[] = await Promise.all(
    observation.resources.map(async (r) => {
      // Nothing to do is not the same as saved: a resource with no backup, or holding work no save
      // takes (unreadable files, a repo without commits: what shutdown counts as not saved), is never `ok`.
      const nothingYet = r.diff === null ? (r.module.unsaved?.(r.resource, r.seen.state) ?? null) : null;
      const work = r.diff === null && nothingYet === null ? (r.module.unsavedWork?.(r.resource, r.seen.state) ?? null) : null;
      const unsaved = nothingYet ?? (work === null ? null : `not saved: ${work}`);
      return {
        address: r.address,
        ok: r.diff === null && unsaved === null,
        state: unsaved ?? (r.diff === null ? 'ok' : r.diff.conflict ? `conflict: ${r.diff.conflict.message}` : `needs ${r.diff.action}: ${r.diff.reason}`),
        facts: r.unobserved ? {} : await r.module.facts(r.resource, r.seen.state, observation.ctx),
      };
    }),
  );
  // The lease, the leftovers and the incomplete uploads are looked up side by side (each retries
  // on its own when a store does not answer).
  // A store that fails was named on its resources' rows: leftovers are looked for where it lets them be.
  let unchecked: StoreError | null = null;
  const [leases, leftovers, uploads] = await Promise.all([
    leaseRows(host, env),
    findLeftovers(env, observation.ctx).catch((error: unknown) => {
      if (!(error instanceof StoreError)) throw error;
      unchecked = error;
      return [];
    }),
    // Multipart uploads a killed push left in a bucket reached through the API, idle for long
    // enough that clean aborts them (the store bills their parts); young ones may be a live push's.
    findIncompleteUploads(env, host.now().getTime()),
  ]);
  rows.push(...leases);
  const stale = uploads.stale;
  const uploadsUnchecked = uploads.failures.filter((failure) => !failure.unsupported);
  // Folders a killed rollback or detach was building beside a local folder (host/state-leftovers.ts).
  const building = await deadBuildings(host, stateDir(io.env));
  const clean = cleanCommand(env.specFile, env.environment);
  if (opts.json) {
    const extra = {
      ...(leftovers.length ? { leftovers: leftovers.map(({ bucket, key, where, kind }) => ({ bucket, key, path: where, kind })) } : {}),
      ...(stale.length ? { incompleteUploads: stale.map(({ bucket, key, where, parts, bytes, lastWrittenMs }) => ({ bucket, key, path: where, parts, bytes, lastWritten: new Date(lastWrittenMs).toISOString() })) } : {}),
      ...(leftovers.length || stale.length ? { clean } : {}),
      ...(building.length ? { killedRunFolders: building } : {}),
    };
    io.out(statusJson(env.environment, rows, extra));
  } else {
    io.out(renderStatus(header(env, 'status'), rows, makeStyle(io.color)));
    const found = renderLeftovers(leftovers) + renderIncompleteUploads({ stale, recent: [], elsewhere: 0, failures: uploadsUnchecked }, host.now());
    if (found) io.out(`\n${found}${leftovers.length || stale.length ? `Remove them with: ${clean}\n` : ''}`);
    if (building.length) io.out(`\n${killedRunFolders(building)}Removed by the next command that takes the apply lock, e.g.: ${clean}\n`);
    if (unchecked) io.out(`\nLeftovers not looked for: ${(unchecked as StoreError).message}\n`);
  }
  return 0; // status reports; drift is not an error (use `plan --detailed-exitcode` to test for it)
}
