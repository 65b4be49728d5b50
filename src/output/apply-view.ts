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

export function taskListView(): ApplyView {
  return {
    async run(tasks: ActionTask[]) {
      const { Listr } = await import('listr2');
      const list = new Listr(
        tasks.map((task) => ({
          title: task.title,
          task: async (_: unknown, item: { title: string; output: string; skip(message?: string): void }) => {
            const result = await task.run((line) => (item.output = line));
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
