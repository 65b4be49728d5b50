// The one command that resolves a lineage conflict, for watch's `needs a person` line: taking the
// store's generation (`persist rollback ADDR --to N`, the local copy kept aside), or moving a folder
// that holds another store's data aside (`mv FROM FROM.<environment>`).
import type { Decision } from '../engine/types.js';

export function resolvingCommand(decision: Pick<Decision, 'conflict'>): string | null {
  const fix = decision.conflict?.fix ?? '';
  const match = fix.match(/persist rollback \S+ --to \d+/) ?? fix.match(/\bmv \S+ \S+(?=\))/);
  return match ? match[0] : null;
}
