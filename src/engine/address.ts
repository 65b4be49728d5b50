// Resource addresses: `<kind>.<name>` (`mount.data`, `sync.clawdbot`). Names cannot hold a
// kind's separator ambiguity: a name may contain dots, the kind never does.
import type { ResourceKind } from './types.js';

export type Address = `${ResourceKind}.${string}`;

export function addressOf(kind: ResourceKind, name: string): Address {
  return `${kind}.${name}`;
}

/** The mount resource of a bucket. */
export function mountAddress(bucket: string): Address {
  return addressOf('mount', bucket);
}

export function parseAddress(address: string): { kind: string; name: string } {
  const dot = address.indexOf('.');
  return dot < 0 ? { kind: address, name: '' } : { kind: address.slice(0, dot), name: address.slice(dot + 1) };
}
