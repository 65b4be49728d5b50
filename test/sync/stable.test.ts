// Stable reads against the in-memory host: the push's budget for looking at writers of recent files.
import { describe, expect, it } from 'vitest';
import { MemoryHost } from '../../src/host/memory.js';
import { SETTLE_MS } from '../../src/host/quiet.js';
import { LOOK_BUDGET_MS, pushFile, Stage } from '../../src/resources/sync/stable.js';
import { MountedStore } from '../../src/store/mounted.js';

/** A machine where every process can be looked into, none holds a file open, and each look takes `lookMs`. */
class LookingHost extends MemoryHost {
  looks = 0;
  constructor(private readonly lookMs: number) {
    super();
  }
  override async writersOf(_path: string): Promise<{ writers: { pid: number; append: boolean }[]; complete: boolean }> {
    this.looks += 1;
    this.clock = new Date(this.clock.getTime() + this.lookMs);
    return { writers: [], complete: true };
  }
}

describe('looking for writers of recent files', () => {
  it('past the push budget, a file just written waits for quiet instead of a look', async () => {
    const lookMs = 700;
    const host = new LookingHost(lookMs);
    host.environment = { PERSIST_STATE_DIR: '/state' };
    const store = new MountedStore(host, '/bucket');
    const stage = new Stage(host);
    const lookedBeforeBudget = Math.ceil(LOOK_BUDGET_MS / lookMs);
    const results = [];
    for (let i = 0; i < lookedBeforeBudget + 2; i++) {
      const source = `/work/${i}.json`;
      host.addFile(source, `{"n":${i}}`); // written just now
      const info = (await host.lstat(source))!;
      const startedAt = host.now().getTime();
      const pushed = await pushFile(host, store, stage, source, `state/${i}.json`, info, { sqlite: false });
      results.push({ pushed, tookMs: host.now().getTime() - startedAt });
    }
    expect(host.looks).toBe(lookedBeforeBudget);
    for (const [i, { pushed, tookMs }] of results.entries()) {
      expect(pushed.kind, `file ${i}`).toBe('stored');
      if (i < lookedBeforeBudget) {
        // Looked at: nobody writes it, taken at the first read.
        expect(pushed).toMatchObject({ moved: false });
        expect(tookMs).toBe(lookMs);
      } else {
        // Budget spent: read again once it was quiet for SETTLE_MS.
        expect(pushed).toMatchObject({ moved: true });
        expect(tookMs).toBe(SETTLE_MS);
      }
    }
    expect((await host.readFile(`/bucket/state/${lookedBeforeBudget + 1}.json`)).toString()).toBe(`{"n":${lookedBeforeBudget + 1}}`);
  });
});
