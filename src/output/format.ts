// Formatting shared by every view: sizes, counts, samples of paths, error text.

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
