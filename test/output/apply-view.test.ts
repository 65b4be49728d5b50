// The lines view (not a terminal: CI, pipes, docker logs) says where a long action is at least
// every interval, with the action's latest report; a short action prints only its result line.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { linesView, PROGRESS_EVERY_MS, REDRAW_EVERY_MS, throttledReport } from '../../src/output/apply-view.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('linesView', () => {
  it('prints a progress line every interval while an action runs, with its latest report', async () => {
    const printed: string[] = [];
    await linesView((text) => printed.push(text), 60).run([
      {
        title: '1. + link.memory  adopt',
        run: async (report) => {
          report('copied 20 files, 1.0 KiB');
          await sleep(150);
          report('copied 40 files, 2.0 KiB');
          await sleep(150);
          return { status: 'applied', message: 'adopted 40 files', notes: [] };
        },
      },
      { title: '2. ~ sync.state  push', run: async () => ({ status: 'applied', message: 'pushed', notes: [] }) },
    ]);
    const progress = printed.filter((line) => line.startsWith('… 1. + link.memory  adopt: '));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress[0]).toMatch(/copied 20 files, 1\.0 KiB \(60 ms so far\)/);
    expect(progress.at(-1)).toContain('copied 40 files, 2.0 KiB');
    expect(printed.at(-2)).toBe('✔ 1. + link.memory  adopt: adopted 40 files\n');
    // The quick action: its result only, no progress line.
    expect(printed.filter((line) => line.includes('sync.state'))).toEqual(['✔ 2. ~ sync.state  push: pushed\n']);
  });

  it('says so every 10 s by default', () => {
    expect(PROGRESS_EVERY_MS).toBe(10_000);
  });
});

// The task list (a terminal) redraws everything for each line it is given: a restore reports once
// per file, so the lines reach it at most once every REDRAW_EVERY_MS, the latest one last.
describe('throttledReport', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shows the first of a burst at once and its last when the interval is over, nothing in between', () => {
    vi.useFakeTimers();
    const shown: string[] = [];
    const progress = throttledReport((line) => shown.push(line));
    for (let file = 1; file <= 2000; file++) progress.report(`restored ${file}/2000 files`);
    expect(shown).toEqual(['restored 1/2000 files']);
    vi.advanceTimersByTime(REDRAW_EVERY_MS - 1);
    expect(shown).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(shown).toEqual(['restored 1/2000 files', 'restored 2000/2000 files']);
    vi.advanceTimersByTime(10 * REDRAW_EVERY_MS);
    expect(shown).toHaveLength(2);
    // After a quiet interval, the next report shows at once.
    progress.report('restored 2000/2000 files, flushing');
    expect(shown.at(-1)).toBe('restored 2000/2000 files, flushing');
  });

  it('shows nothing more once stopped', () => {
    vi.useFakeTimers();
    const shown: string[] = [];
    const progress = throttledReport((line) => shown.push(line), 50);
    progress.report('one');
    progress.report('two');
    progress.stop();
    vi.advanceTimersByTime(500);
    expect(shown).toEqual(['one']);
  });
});
