// The lines view (not a terminal: CI, pipes, docker logs) says where a long action is at least
// every interval, with the action's latest report; a short action prints only its result line.
import { describe, expect, it } from 'vitest';
import { linesView, PROGRESS_EVERY_MS } from '../../src/output/apply-view.js';

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
