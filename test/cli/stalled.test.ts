// A command that waits for a promise nothing can settle (a stalled stream, say) empties Node's
// event loop, and Node then exits with code 0: persist must report it and exit 1 instead, so that
// a container's boot script never takes a half-done apply for a finished one.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFixture } from './helpers.js';

describe('a command that stalls', () => {
  it('exits 1 with an internal error, not 0', async () => {
    const fixture = makeFixture({ sync: true });
    expect((await fixture.run(['plan'])).code).toBe(0);
    // Every read of a whole file now waits forever, with nothing left in the event loop.
    const preload = join(fixture.dir, 'stall.cjs');
    writeFileSync(preload, "require('node:fs').promises.readFile = () => new Promise(() => {});\n");
    const stalled = await fixture.run(['plan'], { env: { NODE_OPTIONS: `--require ${preload}` } });
    expect(stalled.stderr).toContain('persist: internal error: the command stopped before it finished');
    expect(stalled.code).toBe(1);
  });
});
