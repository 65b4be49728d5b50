// Driving one resource module the way the engine does, for the module tests: an observation
// context with the bucket's store, and the engine's own applyAction (re-check, then the module).
import { applyAction, type ActionContext } from '../../src/engine/apply.js';
import type { ApplyOutcome, ObserveContext, PlannedAction } from '../../src/engine/types.js';
import { storesFor } from '../../src/store/index.js';

/** The observation context the engine builds, with the mount readiness a test chooses. */
export function observing(ctx: Omit<ObserveContext, 'store'>): ObserveContext {
  return { ...ctx, store: storesFor(ctx.env, ctx.host) };
}


/** What the engine would make of one planned action: the module's outcome, or the engine's "nothing to do". */
export async function applyPlanned(action: PlannedAction, ctx: ActionContext): Promise<ApplyOutcome> {
  const done = await applyAction(action, ctx);
  if (done === 'up-to-date') return { summary: 'already as the spec wants it (nothing to do)' };
  if (done === 'needs-a-person') throw new Error('needs a person');
  return done.outcome;
}
