// `persist validate`: check the spec (every environment, or the one given with --env) and print
// each problem as FILE:LINE:COL: key.path: message, or one JSON document with --json. It composes
// no host (the spec loader reads the one file through a RealHost of its own), so `--debug` logs
// no Host calls here: a valid spec leaves stderr empty even then.
import { formatProblem, PersistError } from '../errors.js';
import { plural } from '../output/format.js';
import { validateSpec } from '../spec/index.js';
import type { CommandIO, SpecOptions } from './types.js';

export default async function validate(opts: SpecOptions, io: CommandIO): Promise<number> {
  const file = opts.file ?? io.env.PERSIST_SPEC ?? 'persist.yaml';
  let checked: Awaited<ReturnType<typeof validateSpec>>;
  try {
    checked = await validateSpec({ file, environment: opts.env, processEnv: io.env, cwd: io.cwd });
  } catch (error) {
    // A spec that cannot be read at all (missing, a folder, unreadable): still one JSON document.
    if (!opts.json || !(error instanceof PersistError)) throw error;
    io.out(`${JSON.stringify({ valid: false, environments: [], errors: [{ file, message: error.message }] }, null, 2)}\n`);
    return 1;
  }
  const { problems, environments } = checked;
  const valid = problems.length === 0;
  if (opts.json) {
    const errors = problems.map(({ file, line, column, path, message, consequences }) => ({
      file,
      line,
      column,
      path,
      message,
      ...(consequences?.length ? { consequences: consequences.map((c) => ({ file: c.file, line: c.line, column: c.column, path: c.path, message: c.message })) } : {}),
    }));
    io.out(`${JSON.stringify({ valid, environments, errors }, null, 2)}\n`);
  } else if (valid) {
    const checked = opts.env === undefined ? environments : [opts.env];
    io.out(`✓ ${file} is valid (environments: ${checked.join(', ')})\n`);
  } else {
    for (const problem of problems) io.err(`${formatProblem(problem)}\n`);
    io.err(`${plural(problems.length, 'problem')} in ${file}\n`);
  }
  return valid ? 0 : 1;
}
