// `git bundle create` of an exact ref map (name → object id, HEAD included), without creating a
// single ref in the repo: the refs are written into a throwaway bare repository whose object store
// borrows the repo's (objects/info/alternates), and the bundle is made there. This is how stash
// entries travel as `refs/persist/stash/<n>` although the repo only has them in a reflog, and why
// the refs bundled are exactly the ones observed (a ref that moves meanwhile is saved as it was
// observed; the next plan sees the difference).
import { join } from 'node:path';
import { ActionError } from '../../errors.js';
import type { Host } from '../../host/types.js';
import { git } from './git.js';

export async function createBundle(host: Host, repo: string, file: string, refs: Record<string, string>, workDir: string): Promise<void> {
  const names = Object.keys(refs).filter((name) => name !== 'HEAD');
  if (names.length === 0 && !refs.HEAD) throw new ActionError(`${repo} has no refs to bundle`);
  const path = async (name: string): Promise<string> =>
    (await git(host, ['-C', repo, 'rev-parse', '--path-format=absolute', '--git-path', name], { readOnly: true })).stdout.trim();
  const objectFormat = (await git(host, ['-C', repo, 'rev-parse', '--show-object-format'], { readOnly: true })).stdout.trim() || 'sha1';
  const scratch = join(workDir, 'refs.git');
  await git(host, ['init', '-q', '--bare', `--object-format=${objectFormat}`, scratch]);
  await host.writeFile(join(scratch, 'objects', 'info', 'alternates'), `${await path('objects')}\n`);
  const shallow = await path('shallow');
  if (await host.lstat(shallow)) await host.copyFile(shallow, join(scratch, 'shallow'));
  const inScratch = ['--git-dir', scratch];
  const updates = names.map((name) => `create ${name} ${refs[name]}\n`).join('');
  if (updates) await git(host, [...inScratch, 'update-ref', '--stdin'], { input: updates });
  if (refs.HEAD) await git(host, [...inScratch, 'update-ref', '--no-deref', 'HEAD', refs.HEAD]);
  await git(host, [...inScratch, 'bundle', 'create', '-q', file, '--all'], { describe: `git bundle create ${file} (of the refs of ${repo})` });
}
