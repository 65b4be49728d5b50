// Bounded concurrency: mapLimit's calls and Slots' turns, counted while they run.
import { describe, expect, it } from 'vitest';
import { apiTransfers, mapLimit, Slots, transferConcurrency } from '../../src/store/limit.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 2));

describe('Slots', () => {
  it('runs at most its size at once, the others in the order they asked, and frees a slot when a call fails', async () => {
    const slots = new Slots(3);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    // 20 files under way at once, each taking a slot only for its "request".
    const results = await mapLimit(Array.from({ length: 20 }, (_, i) => i), 20, (i) =>
      slots
        .use(async () => {
          started.push(i);
          running++;
          most = Math.max(most, running);
          await tick();
          running--;
          if (i % 7 === 3) throw new Error(`request ${i} failed`);
          return i;
        })
        .catch((error: Error) => error.message),
    );
    expect(most).toBe(3);
    expect(started).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(results[3]).toBe('request 3 failed');
    expect(results[19]).toBe(19);
    // Every slot came back: three more run at once.
    running = 0;
    most = 0;
    await Promise.all([1, 2, 3].map(() => slots.use(async () => { running++; most = Math.max(most, running); await tick(); running--; })));
    expect(most).toBe(3);
  });
});

describe('transfer concurrency', () => {
  const api = { localPath: () => null };
  const mount = { localPath: (key: string) => `/data/m/${key}` };
  it('through the API: 16 requests in flight and twice as many files; through a mount: 3 files; PERSIST_TRANSFERS sets the requests or the files', () => {
    expect(apiTransfers({})).toBe(16);
    expect(transferConcurrency(api, {})).toBe(32);
    expect(transferConcurrency(mount, {})).toBe(3);
    expect(apiTransfers({ PERSIST_TRANSFERS: '4' })).toBe(4);
    expect(transferConcurrency(api, { PERSIST_TRANSFERS: '4' })).toBe(8);
    expect(transferConcurrency(mount, { PERSIST_TRANSFERS: '4' })).toBe(4);
    expect(apiTransfers({ PERSIST_TRANSFERS: '0' })).toBe(16);
    expect(transferConcurrency(mount, { PERSIST_TRANSFERS: '65' })).toBe(3);
  });
});
