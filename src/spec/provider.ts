// The storage provider of a bucket that does not name one, inferred from its endpoint.
import type { Provider } from './types.js';

/** `*.r2.cloudflarestorage.com` -> r2, `*.amazonaws.com` or no endpoint -> aws, else other. */
export function inferProvider(endpoint: string | undefined): Provider {
  if (endpoint === undefined) return 'aws';
  let host: string;
  try {
    host = new URL(endpoint).hostname;
  } catch {
    return 'other';
  }
  if (host === 'r2.cloudflarestorage.com' || host.endsWith('.r2.cloudflarestorage.com')) return 'r2';
  if (host === 'amazonaws.com' || host.endsWith('.amazonaws.com')) return 'aws';
  return 'other';
}
