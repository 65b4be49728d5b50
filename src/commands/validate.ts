// `persist validate`: check the spec (every environment, or the one given with --env) and print
// each problem as FILE:LINE:COL: key.path: message, or one JSON document with --json. It composes
// no host (the spec loader reads the one file through a RealHost of its own), so `--debug` logs
// no Host calls here: a valid spec leaves stderr empty even then.
import { formatProblem } from '../errors.js';
import { plural } from '../output/format.js';
import { validateSpec } from '../spec/index.js';
import type { CommandIO, SpecOptions } from './types.js';

export default async function validate(opts: SpecOptions, io: CommandIO): Promise<number> {
  const file = opts.file ?? io.env.PERSIST_SPEC ?? 'persist.yaml';
  const { problems, environments } = await validateSpec({ file, environment: opts.env, processEnv: io.env, cwd: io.cwd });
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
