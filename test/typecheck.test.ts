// Nothing else type-checks the code: the build (esbuild) and vitest strip the types without
// reading them. So the suite runs the compiler over src, test, bench and scripts with the
// project's settings (strict, no unused locals or parameters) and fails on any error it reports.
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const repo = resolve(import.meta.dirname, '..');

it('type-checks with the project settings (tsc --noEmit)', { timeout: 240_000 }, async () => {
  const tsc = resolve(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '-p', repo], { cwd: repo, maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout }) => ({ code: 0, output: stdout }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
  );
  expect(result.output.trim()).toBe('');
  expect(result.code).toBe(0);
});
