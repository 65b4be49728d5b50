// `persist history`: the generations kept in the store, per sync (and bundle), read-only. Exit 1
// when the generations of any of them could not be listed (the store unreachable, a mount not
// there): the rows that could be are printed all the same.
import { UsageError } from '../errors.js';
import { historyJson, renderHistory, type HistoryRow } from '../output/history-view.js';
import { makeStyle } from '../output/style.js';
import { lineageHistory } from '../lineage/history.js';
import { computePlan, header, loadSpec, makeHost } from './common.js';
import type { CommandIO, SpecOptions } from './types.js';

export interface HistoryOptions extends SpecOptions {
  target?: string[];
}

export default async function history(opts: HistoryOptions, io: CommandIO): Promise<number> {
  const env = await loadSpec(opts, io);
  const host = makeHost(io, { readOnly: true });
  const { observation } = await computePlan(host, env, { allowShrink: false }, []);
  const targets = opts.target ?? [];
  const kinds = observation.resources.filter((r) => r.module.kind === 'sync' || r.module.kind === 'bundle');
  for (const target of targets) {
    if (!kinds.some((r) => r.address === target)) throw new UsageError(`--target ${target}: no sync or bundle of that name in environment ${env.environment} (known: ${kinds.map((r) => r.address).join(', ') || 'none'})`);
  }
  const rows: HistoryRow[] = [];
  for (const resource of kinds) {
    if (targets.length && !targets.includes(resource.address)) continue;
    rows.push(await lineageHistory(resource, observation.ctx));
  }
  if (opts.json) io.out(historyJson(env.environment, rows));
  else io.out(renderHistory(header(env, 'history'), rows, makeStyle(io.color)));
  return rows.some((row) => row.problem !== undefined) ? 1 : 0;
}
