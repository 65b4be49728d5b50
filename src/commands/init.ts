// `persist init`: write a commented starter spec on the `local` backend (runs anywhere, no
// credentials), never over an existing file unless --force is given.
import { resolve } from 'node:path';
import { PersistError } from '../errors.js';
import { errorMessage } from '../output/format.js';
import { STARTER_SPEC } from '../spec/starter.js';
import { makeHost } from './host.js';
import type { CommandIO } from './types.js';

export interface InitOptions {
  file?: string;
  force?: boolean;
}

export default async function init(opts: InitOptions, io: CommandIO): Promise<number> {
  const file = opts.file ?? io.env.PERSIST_SPEC ?? 'persist.yaml';
  try {
    await makeHost(io).writeFile(resolve(io.cwd, file), STARTER_SPEC, { exclusive: !opts.force });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new PersistError(`${file} already exists; use --force to overwrite it`);
    throw new PersistError(`cannot write ${file}: ${errorMessage(error)}`, { cause: error });
  }
  io.out(`Wrote ${file}. Next: persist validate -f ${file}, then persist plan -f ${file}\n`);
  return 0;
}
