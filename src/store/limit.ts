// Bounded concurrency for transfers: at most `limit` calls of `fn` in flight, results in input
// order. Used by the S3 client (parts, delete batches) and by the sync loops (files), with the
// bound of the bucket's store (transferConcurrency).
import type { Store } from './types.js';

/** Files in flight at once through the S3 API (as `rclone copy --transfers 16`). */
export const API_CONCURRENCY = 16;
/**
 * Files in flight at once through a mount (or the `local` folder). Every call into a FUSE mount
 * goes through Node's thread pool, whose 4 threads bound what more files in flight can gain; the
 * figures behind this value are in bench/RESULTS.md ("Parallel transfers").
 */
export const MOUNTED_CONCURRENCY = 4;

/** How many files a sync moves at once into or out of a store: a folder (a mount, `local`) or the S3 API. */
export function transferConcurrency(store: Pick<Store, 'localPath'>): number {
  return store.localPath('') === null ? API_CONCURRENCY : MOUNTED_CONCURRENCY;
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
