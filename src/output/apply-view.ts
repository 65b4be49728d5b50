// The views of an apply's progress, picked once by the command: listr2's live task list on a
// terminal, one line per finished action elsewhere (CI, pipes, docker logs), nothing under --json.
import type { ActionResult, ActionTask, ApplyView } from '../engine/apply.js';

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

export function linesView(print: (text: string) => void): ApplyView {
  return {
    async run(tasks) {
      for (const task of tasks) {
        const result = await task.run(() => undefined);
        print(`${MARKS[result.status]} ${finishedLine(task.title, result)}\n`);
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
