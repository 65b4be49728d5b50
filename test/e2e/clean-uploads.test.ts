// `persist clean` and the incomplete multipart uploads a killed push leaves in a bucket reached
// through its S3 API: a push SIGKILLed in the middle of a large file's multipart upload, on the
// strict loopback server (which answers ListMultipartUploads, ListParts and AbortMultipartUpload
// as S3 does). clean leaves an upload written to in the last hour alone (a live push may be
// sending it), lists and aborts one left longer (backdated at the server), and never touches
// uploads outside the folders persist writes; status names the ones clean would abort.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatBytes, plural } from '../../src/output/format.js';
import { S3Client } from '../../src/store/s3/client.js';
import { e2eRig } from '../helpers/e2e.js';
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY, startStrictS3Server, type StoredUpload, type StrictS3TestServer } from '../helpers/s3server.js';
import { apiBucketYaml, applyKilledWhen, Machine } from './flow-helpers.js';

const MiB = 1024 * 1024;
const BUCKET = 'clean-uploads';
const HOURS = 3600 * 1000;

function spec(server: StrictS3TestServer): string {
  return ['version: 1', 'buckets:', '  data:', apiBucketYaml(server, BUCKET, 'env1'), 'syncs:', '  notes: { from: ./notes, to: notes, delete: true }', ''].join('\n');
}

/** The server's uploads once they have stopped changing (parts the killed child had in flight settle). */
async function settledUploads(server: StrictS3TestServer): Promise<StoredUpload[]> {
  let last = '';
  for (;;) {
    const uploads = await server.multipartUploads(BUCKET);
    const now = JSON.stringify(uploads);
    if (now === last) return uploads;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

const bytesOf = (upload: StoredUpload): number => upload.parts.reduce((sum, part) => sum + part.size, 0);

describe('persist clean and incomplete multipart uploads', () => {
  const rig = e2eRig(() => startStrictS3Server());

  it('leaves a young upload alone, aborts one a killed push left over an hour ago, and nothing outside where persist writes', { timeout: 300_000 }, async () => {
    const server = rig.server;
    await server.createBucket(BUCKET);
    const m = new Machine(await rig.sandbox.tempDir('persist-clean-uploads-'));
    await writeFile(m.spec, spec(server));
    await mkdir(join(m.root, 'notes'), { recursive: true });
    await writeFile(join(m.root, 'notes', 'small.md'), 'a note\n');
    await writeFile(join(m.root, 'notes', 'big.bin'), randomBytes(40 * MiB));

    // The push is killed once the server has taken two parts of the big file (of five).
    server.resetCounts();
    const push = await applyKilledWhen(m, () => server.requests().filter((r) => r.method === 'PUT' && r.url.includes('partNumber=') && r.answeredUs !== undefined).length >= 2);
    expect(push.killed).toBe(true);
    const left = (await settledUploads(server)).filter((upload) => upload.key === 'env1/notes/big.bin');
    expect(left).toHaveLength(1);
    const killed = left[0]!;
    expect(killed.parts.length).toBeGreaterThanOrEqual(2);
    expect(killed.parts.length).toBeLessThan(5);

    // Others: one just started where persist writes (a live push), and old ones elsewhere (not persist's).
    const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', bucket: BUCKET, pathStyle: true, provider: 'other', accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY });
    const initiate = async (key: string): Promise<string> => {
      const file = join(m.root, 'part.bin');
      await writeFile(file, randomBytes(6 * MiB));
      // A multipart upload whose completion is refused (an injected 400), and whose abort is too, stays in the bucket.
      server.injectFailures({ method: 'POST', match: (url) => url.includes('uploadId='), status: 400, code: 'InvalidPart' });
      server.injectFailures({ method: 'DELETE', match: (url) => url.includes('uploadId='), status: 400, code: 'InvalidRequest' });
      await expect(client.putLarge(key, file, { partSize: 5 * MiB })).rejects.toThrow(/InvalidPart/);
      return (await server.multipartUploads(BUCKET)).find((upload) => upload.key === key)!.uploadId;
    };
    const young = await initiate('env1/notes/young.bin');
    const elsewhere = await initiate('env1/other/x.bin');
    const otherEnv = await initiate('env2/notes/big.bin');
    client.close();
    for (const id of [elsewhere, otherEnv]) await server.backdateUpload(BUCKET, id, new Date(Date.now() - 5 * HOURS));

    // Everything where persist writes is young: left alone, and said so.
    const early = await m.persist(['clean', '--auto-approve']);
    expect(early.code, early.output).toBe(0);
    expect(early.stdout).toContain('Left alone: 2 incomplete uploads written to in the last 60 min (a push may still be sending them; clean aborts one left for 60 min):\n');
    expect(early.stdout).toContain(`  s3://${BUCKET}/env1/notes/big.bin  (incomplete upload: ${formatBytes(bytesOf(killed))} in ${plural(killed.parts.length, 'part')}, last written `);
    expect(early.stdout).toContain(`  s3://${BUCKET}/env1/notes/young.bin  (incomplete upload: 6.0 MiB in 2 parts, last written `);
    expect(early.stdout).toContain("Left alone: 1 incomplete upload under the bucket's prefix outside the folders persist writes.\n");
    expect(early.stdout).toContain('No leftovers of persist in the bucket.\n');
    expect((await server.multipartUploads(BUCKET)).length).toBe(4);

    // The killed push's upload left two hours ago: listed; without --auto-approve (not a terminal) nothing is aborted.
    await server.backdateUpload(BUCKET, killed.uploadId, new Date(Date.now() - 2 * HOURS));
    // status names it too (not the young one, which a live push may be sending), and how to remove it.
    const status = await m.persist(['status']);
    expect(status.code, status.output).toBe(0);
    expect(status.stdout).toContain(
      `\n1 incomplete upload of persist in the bucket (parts an interrupted push or write sent and never completed, ${formatBytes(bytesOf(killed))}):\n` +
        `  s3://${BUCKET}/env1/notes/big.bin  (incomplete upload: ${formatBytes(bytesOf(killed))} in ${plural(killed.parts.length, 'part')}, last written 2h ago)\n` +
        'Remove them with: persist clean',
    );
    expect(status.stdout).not.toContain('young.bin');
    const statusJson = JSON.parse((await m.persist(['status', '--json'])).stdout) as { incompleteUploads: { key: string; parts: number; bytes: number }[]; clean: string };
    expect(statusJson.incompleteUploads).toEqual([expect.objectContaining({ key: 'env1/notes/big.bin', parts: killed.parts.length, bytes: bytesOf(killed) })]);
    expect(statusJson.clean).toMatch(/^persist clean/);
    const listed = await m.persist(['clean']);
    expect(listed.code).toBe(1);
    expect(listed.stdout).toContain(
      [
        `1 incomplete upload of persist in the bucket (parts an interrupted push or write sent and never completed, ${formatBytes(bytesOf(killed))}):`,
        `  s3://${BUCKET}/env1/notes/big.bin  (incomplete upload: ${formatBytes(bytesOf(killed))} in ${plural(killed.parts.length, 'part')}, last written 2h ago)`,
        '',
      ].join('\n'),
    );
    expect(listed.stdout).toContain('Left alone: 1 incomplete upload written to in the last 60 min');
    expect(listed.stderr).toContain('clean needs --auto-approve when not run on a terminal');
    expect((await server.multipartUploads(BUCKET)).length).toBe(4);

    server.resetCounts();
    const cleaned = await m.persist(['clean', '--auto-approve']);
    expect(cleaned.code, cleaned.output).toBe(0);
    expect(cleaned.stdout).toContain(`Clean complete: aborted 1 incomplete upload (${formatBytes(bytesOf(killed))}).\n`);
    expect(server.requests().filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual([`/${BUCKET}/env1/notes/big.bin?uploadId=${killed.uploadId}`]);
    expect((await server.multipartUploads(BUCKET)).map((upload) => upload.uploadId).sort()).toEqual([young, elsewhere, otherEnv].sort());
    expect(server.signatureFailures()).toBe(0);

    // The next push completes; clean then finds nothing of persist's but the young upload.
    const again = await m.persist(['apply', '--auto-approve']);
    expect(again.code, again.output).toBe(0);
    expect((await server.getObject(BUCKET, 'env1/notes/big.bin'))?.length).toBe(40 * MiB);
    const after = await m.persist(['clean', '--auto-approve']);
    expect(after.stdout).toContain('Left alone: 1 incomplete upload written to in the last 60 min');
    expect(after.stdout).toContain('No leftovers of persist in the bucket.\n');

    // Keys that may not list uploads: said so, and clean fails (it could not look).
    server.injectFailures({ method: 'GET', match: (url) => /[?&]uploads(=|&|$)/.test(url), status: 403, code: 'AccessDenied' });
    const refused = await m.persist(['clean', '--auto-approve']);
    expect(refused.code, refused.output).toBe(1);
    expect(refused.stdout).toContain('incomplete uploads not looked into in bucket data: S3 listMultipartUploads of "env1/" failed: HTTP 403 AccessDenied: injected by the test proxy\n');
    expect(refused.stdout).toContain('No leftovers of persist found where clean could look.\n');
    expect(refused.output).not.toContain(S3RVER_SECRET_KEY);
  });
});
