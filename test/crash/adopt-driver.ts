// A stand-in for `persist plan|apply` with one link on a local bucket, bundled by the crash test
// (esbuild) so that the kill test drives a real separate process even without the CLI.
//   node driver.mjs plan|apply WORKSPACE MOUNT NAME REL_TARGET
// plan prints `No changes.` or `<action>: <reason>`; apply carries the action out.
import { join } from 'node:path';
import { RealHost } from '../../src/host/real.js';
import { applyLink, diffLink, observeLink } from '../../src/resources/link/index.js';
import type { ResolvedLink } from '../../src/spec/types.js';

const [command, workspace, mount, name, relTarget] = process.argv.slice(2);
if (!command || !workspace || !mount || !name || !relTarget) {
  console.error('usage: adopt-driver plan|apply WORKSPACE MOUNT NAME REL_TARGET');
  process.exit(1);
}
const link: ResolvedLink = { name, bucket: 'data', path: join(workspace, name), relTarget, target: join(mount, relTarget) };
const host = new RealHost();
const observed = await observeLink(link, { host, mountReady: { data: true } });
const planned = diffLink(link, observed);
if (planned === null) {
  console.log('No changes.');
} else if (command === 'plan') {
  console.log(`${planned.action}: ${planned.reason}`);
} else {
  const outcome = await applyLink(link, planned, observed, { host, report: () => {}, signal: new AbortController().signal });
  console.log(`${planned.action}: ${outcome.summary}`);
  for (const note of outcome.notes ?? []) console.log(`  ${note}`);
}
