// The views of an apply's progress, picked once by the command: listr2's live task list on a
// terminal, one line per finished action elsewhere (CI, pipes, docker logs), nothing under --json.
import type { ActionResult, ActionTask, ApplyView } from '../engine/apply.js';
import { formatDuration } from './format.js';

const MARKS: Record<ActionResult['status'], string> = { applied: '✔', failed: '✖', skipped: '↓' };

function finishedLine(title: string, result: ActionResult): string {
  return `${title}: ${result.message}`;
}

export function silentView(): ApplyView {
  return {
    async run(tasks) {
      for (const task of tasks) await task.run(() => undefined);
    },
  };
}

/** How often the lines view says where a long action is (docker logs show nothing otherwise). */
export const PROGRESS_EVERY_MS = 10_000;

/**
 * One line per finished action; while an action runs longer than `everyMs`, a progress line
 * every `everyMs` with its latest report (files and bytes done) and the time it has taken.
 */
export function linesView(print: (text: string) => void, everyMs = PROGRESS_EVERY_MS): ApplyView {
  return {
    async run(tasks) {
      for (const task of tasks) {
        let latest = '';
        let elapsed = 0;
        const timer = setInterval(() => {
          elapsed += everyMs;
          print(`… ${task.title}: ${latest || 'working'} (${formatDuration(elapsed)} so far)\n`);
        }, everyMs);
        timer.unref?.();
        try {
          const result = await task.run((line) => (latest = line));
          print(`${MARKS[result.status]} ${finishedLine(task.title, result)}\n`);
        } finally {
          clearInterval(timer);
        }
      }
    },
  };
}

/** How often the task list redraws a running action's progress line. */
export const REDRAW_EVERY_MS = 100;

/**
 * `show` for the latest of many reports, at most once every `everyMs`: the first at once, the
 * last when its interval is over (unless `stop` came first). Each line set on a listr2 task
 * redraws the whole list and measures the width of every line: once per restored file, that kept
 * the main thread of a restore of 2,000 files busy 7.4 s on a terminal instead of 2.1 s.
 */
export function throttledReport(show: (line: string) => void, everyMs = REDRAW_EVERY_MS): { report(line: string): void; stop(): void } {
  let shownAt = -Infinity;
  let pending: string | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = (): void => {
    timer = undefined;
    if (pending === null) return;
    shownAt = Date.now();
    show(pending);
    pending = null;
  };
  return {
    report(line) {
      pending = line;
      if (timer) return;
      const wait = shownAt + everyMs - Date.now();
      if (wait <= 0) return flush();
      timer = setTimeout(flush, wait);
      timer.unref?.();
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
      pending = null;
    },
  };
}

export function taskListView(): ApplyView {
  return {
    async run(tasks: ActionTask[]) {
      const { Listr } = await import('listr2');
      const list = new Listr(
        tasks.map((task) => ({
          title: task.title,
          task: async (_: unknown, item: { title: string; output: string; skip(message?: string): void }) => {
            const progress = throttledReport((line) => (item.output = line));
            const result = await task.run(progress.report).finally(progress.stop);
            const line = finishedLine(task.title, result);
            if (result.status === 'failed') throw new Error(line);
            if (result.status === 'skipped') item.skip(line);
            else item.title = line;
          },
        })),
        {
          concurrent: false,
          exitOnError: false,
          // listr2's own SIGINT handler calls process.exit(127) in the middle of an action; the
          // commands handle SIGINT/SIGTERM themselves (finish the current action, skip the rest).
          registerSignalListeners: false,
          renderer: 'default',
          rendererOptions: { collapseErrors: false, collapseSkips: false, showErrorMessage: true },
        },
      );
      await list.run();
    },
  };
}
