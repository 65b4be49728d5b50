// Bounded concurrency for transfers: at most `limit` calls of `fn` in flight, results in input order.

export const DEFAULT_CONCURRENCY = 16;

/**
 * Runs `fn` over `items` with at most `limit` calls in flight. On the first failure no new call is
 * started; the promise rejects with that first error once the calls already running have settled
 * (so that nothing is still writing when the caller cleans up, e.g. aborts a multipart upload).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number = DEFAULT_CONCURRENCY,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
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
