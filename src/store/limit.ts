// Bounded concurrency for transfers: mapLimit runs at most `limit` calls of `fn` at once, results
// in input order (the S3 client's parts and delete batches, the sync loops' files, as many at once
// as transferConcurrency says); Slots bounds the transfers an S3Store runs at once.
import type { Store } from './types.js';

/** Transfers in flight through the S3 API (as `rclone copy --transfers 16`): a file's request, or a large file's parts. */
export const API_TRANSFERS = 16;
/**
 * Files a sync moves at once through a mount (or the `local` folder). Every call into a FUSE mount
 * holds one of the 4 threads of Node's pool until the daemon answers: 3 in flight gained as much as
 * 4 or 16 on s3fs and rclone (bench/RESULTS.md, "Parallel transfers") and leave a thread for the
 * rest (the local reads of the files being pushed, DNS lookups, a test's server in the process).
 */
export const MOUNTED_TRANSFERS = 3;

/** `PERSIST_TRANSFERS` (1-64), when set. */
function transfersOverride(env: Record<string, string | undefined>): number | undefined {
  const override = Number(env.PERSIST_TRANSFERS);
  return Number.isInteger(override) && override >= 1 && override <= 64 ? override : undefined;
}

/** Transfers a store over the S3 API runs at once (S3Store's Slots). */
export function apiTransfers(env: Record<string, string | undefined>): number {
  return transfersOverride(env) ?? API_TRANSFERS;
}

/**
 * How many files a sync moves at once into or out of a store: through a folder (a mount, `local`)
 * MOUNTED_TRANSFERS, or `PERSIST_TRANSFERS`; through the S3 API (a mounted bucket's data may go
 * over it: src/store/index.ts) twice apiTransfers, so that a file whose bytes have arrived is
 * written to local disk (or read from it) while another request takes its slot.
 */
export function transferConcurrency(store: Pick<Store, 'localPath'>, env: Record<string, string | undefined>): number {
  if (store.localPath('') === null) return 2 * apiTransfers(env);
  return transfersOverride(env) ?? MOUNTED_TRANSFERS;
}

/** At most `size` calls of `use` run at once; the others wait their turn, first come first served. */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. On the first failure no new call is
 * started; the promise rejects with that first error once the calls already running have settled
 * (so that nothing is still writing when the caller cleans up, e.g. aborts a multipart upload, or
 * writes what the calls that succeeded achieved).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (error) {
        if (!failed) {
          failed = true;
          firstError = error;
        }
      }
    }
  };
  const width = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await Promise.all(Array.from({ length: width }, worker));
  if (failed) throw firstError;
  return results;
}
