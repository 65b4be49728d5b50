// persist's own leftovers in a bucket: conflict copies written beside a file by adopt
// (`<name>.persist-conflict-<stamp>`; only those adopt recorded in the bucket when it made them and
// that still have the recorded size and sha256, see src/resources/link/conflict-records.ts: a name
// alone is no proof, an agent may name its own file so), partial files of an interrupted adopt
// (`.<name>.persist-partial-<token>`), and temporaries of an interrupted copy (`.<name>.persist-tmp-<random>`,
// see src/store/temp-name.ts). Looked for only where persist writes (link targets and sync mirrors,
// recursively; the folders of bundle files and restored files), and only in buckets that are ready.
// `status` lists them; `persist clean` removes them (nothing else). A file named like a conflict
// copy that persist did not record (or that changed since) is a look-alike: clean names it and
// leaves it alone. Partial files keep the name rule: their names carry persist's random part
// (12 hex digits, or pid and 8 hex digits) after a `.persist-` infix, which no user names a file by.
//
// Also incomplete multipart uploads (findIncompleteUploads, `persist clean` only): a push through
// the S3 API or an s3fs write of a large file killed mid-upload leaves the parts it sent in the
// bucket, invisible to a listing and billed, until someone aborts the upload. Looked for through
// the S3 API of every bucket with credentials, under the bucket's prefix and only where persist
// writes (the same places as above); one is a leftover once nothing has been written to it for
// UPLOAD_IDLE_MS (a live push, of this container or another, sends a part every few seconds).
import { posix } from 'node:path';
import type { ObserveContext } from '../engine/types.js';
import { errorMessage, formatAge, formatBytes, formatDuration, plural } from '../output/format.js';
import type { ResolvedBucket, ResolvedEnvironment } from '../spec/types.js';
import { apiLabel, clientFor } from '../store/api.js';
import { mapLimit } from '../store/limit.js';
import { normalizePrefix } from '../store/prefix.js';
import type { MultipartUploadInfo, PartInfo, S3Client } from '../store/s3/client.js';
import { isTempName } from '../store/temp-name.js';
import type { Store } from '../store/types.js';
import { conflictRecordKey, parseConflictRecord } from '../resources/link/conflict-records.js';

export type LeftoverKind = 'conflict copy' | 'partial file';

export interface Leftover {
  bucket: string;
  /** The key in the bucket. */
  key: string;
  /** Where it is, for messages (a path in the mount). */
  where: string;
  kind: LeftoverKind;
}

const CONFLICT_COPY = /\.persist-conflict-\d{8}T\d{6}Z(-\d+)?$/;
/** An adopt's partial copy: `.<name>.persist-partial-<its 12-hex token>` (link/merge.ts). */
const PARTIAL = /^\..+\.persist-partial-[0-9a-f]{12}$/s;

/** What a base name left by persist is, or null for anything else. */
export function leftoverKind(base: string): LeftoverKind | null {
  if (CONFLICT_COPY.test(base)) return 'conflict copy';
  if (isTempName(base) || PARTIAL.test(base)) return 'partial file';
  return null;
}

/** Where persist writes, per bucket: folders it writes anywhere under (link targets, sync mirrors), and folders it writes directly in (those of bundles and restored files). */
interface Places {
  deep: Map<string, Set<string>>;
  shallow: Map<string, Set<string>>;
}

function placesOf(env: ResolvedEnvironment): Places {
  const deep = new Map<string, Set<string>>();
  const shallow = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, bucket: string, key: string) => (map.get(bucket) ?? map.set(bucket, new Set()).get(bucket)!).add(key);
  for (const link of Object.values(env.links)) add(deep, link.bucket, link.relTarget);
  for (const sync of Object.values(env.syncs)) add(deep, sync.bucket, sync.relTo);
  for (const bundle of Object.values(env.bundles)) add(shallow, bundle.bucket, posix.dirname(bundle.relFile));
  for (const file of Object.values(env.files)) add(shallow, file.bucket, posix.dirname(file.relFrom));
  return { deep, shallow };
}

/** Whether a key of the bucket (relative to its prefix) lies where persist writes. */
function inPlaces(places: Places, bucket: string, key: string): boolean {
  for (const root of places.deep.get(bucket) ?? []) {
    const folder = root.replace(/\/+$/, '');
    if (folder === '' || folder === '.' || key.startsWith(`${folder}/`)) return true;
  }
  return places.shallow.get(bucket)?.has(posix.dirname(key)) === true;
}

/**
 * Whether the file at `key` is a conflict copy persist made and recorded, still as it was made
 * (its record names this key, and its size and sha256 are the recorded ones). Read-only.
 */
export async function isRecordedConflictCopy(store: Store, key: string): Promise<boolean> {
  const recordKey = conflictRecordKey(key);
  const [info, recordInfo] = await Promise.all([store.stat(key), store.stat(recordKey)]);
  if (info?.type !== 'file' || recordInfo?.type !== 'file') return false;
  const record = parseConflictRecord(await store.read(recordKey), key);
  return record !== null && record.size === info.size && (await store.hash(key)) === record.sha256;
}

export interface LeftoverSurvey {
  /** persist's own leftovers: what clean removes. */
  leftovers: Leftover[];
  /** Files named like a conflict copy that persist did not record, or that changed since: never removed. */
  lookalikes: Leftover[];
}

/** persist's leftovers only (status). */
export async function findLeftovers(env: ResolvedEnvironment, ctx: ObserveContext): Promise<Leftover[]> {
  return (await surveyLeftovers(env, ctx)).leftovers;
}

export async function surveyLeftovers(env: ResolvedEnvironment, ctx: ObserveContext): Promise<LeftoverSurvey> {
  // Per bucket: folders listed recursively, and folders whose direct entries are looked at.
  const { deep, shallow } = placesOf(env);

  const found = new Map<string, Leftover>();
  const note = (bucket: string, key: string, kind: LeftoverKind | null) => {
    if (kind) found.set(`${bucket}\u0000${key}`, { bucket, key, where: ctx.store(bucket).where(key), kind });
  };
  for (const bucket of new Set([...deep.keys(), ...shallow.keys()])) {
    if (ctx.mountReady[bucket] !== true) continue;
    const store = ctx.store(bucket);
    for (const root of deep.get(bucket) ?? []) {
      if (!(await store.stat(root))) continue;
      const listing = await store.list(root, () => false);
      for (const path of Object.keys(listing.files)) note(bucket, posix.join(root, path), leftoverKind(posix.basename(path)));
    }
    for (const folder of shallow.get(bucket) ?? []) {
      const key = folder === '.' ? '' : folder;
      for (const name of await store.readdir(key)) note(bucket, key ? `${key}/${name}` : name, leftoverKind(name));
    }
  }
  const leftovers: Leftover[] = [];
  const lookalikes: Leftover[] = [];
  for (const leftover of [...found.values()].sort((a, b) => (a.where < b.where ? -1 : a.where > b.where ? 1 : 0))) {
    const ours = leftover.kind !== 'conflict copy' || (await isRecordedConflictCopy(ctx.store(leftover.bucket), leftover.key));
    (ours ? leftovers : lookalikes).push(leftover);
  }
  return { leftovers, lookalikes };
}

/** The lines clean prints about look-alikes ('' when there are none). */
export function renderLookalikes(lookalikes: Leftover[]): string {
  return lookalikes.map((l) => `${l.where}: looks like a conflict copy but persist did not make it (or it changed since): left alone\n`).join('');
}

/** The command that clears them, for this spec and environment. */
export function cleanCommand(specFile: string, environment: string): string {
  return `persist clean -f ${specFile}${environment === 'default' ? '' : ` --env ${environment}`}`;
}

/** The lines status and clean print about leftovers ('' when there are none). */
export function renderLeftovers(leftovers: Leftover[]): string {
  if (leftovers.length === 0) return '';
  const lines = leftovers.map((l) => `  ${l.where}  (${l.kind}${l.kind === 'conflict copy' ? ' made by adopt' : ' of an interrupted write'})`);
  return `${leftovers.length === 1 ? '1 leftover' : `${leftovers.length} leftovers`} of persist in the bucket:\n${lines.join('\n')}\n`;
}

/**
 * What clean says about the leftovers it leaves in a bucket whose lease another machine holds:
 * that machine may be writing its partial files (and adopting with its conflict copies) right now.
 */
export function renderLeftAloneForLease(bucket: string, why: string, leftovers: Leftover[]): string {
  const lines = leftovers.map((l) => `  ${l.where}  (${l.kind})`);
  return `Left alone: ${leftovers.length === 1 ? '1 leftover' : `${leftovers.length} leftovers`} in bucket ${bucket}: ${why}, and another machine may be writing ${leftovers.length === 1 ? 'it' : 'them'} right now. Run clean on the machine that holds the lease, or once it is released (persist shutdown) or expired:\n${lines.join('\n')}\n`;
}

// --- incomplete multipart uploads ---

/**
 * How long nothing must have been written to an incomplete upload (neither its initiation nor any
 * part) before clean aborts it. A push through the API, of this container or of another one
 * sharing the bucket, and an s3fs upload send a part every few seconds while they live; an hour
 * also covers a clock of this machine that is some minutes off the store's.
 */
export const UPLOAD_IDLE_MS = 60 * 60 * 1000;

export interface IncompleteUpload {
  /** The bucket's key under `buckets:`. */
  bucket: string;
  /** The object key the upload would have written (the bucket's prefix included). */
  key: string;
  uploadId: string;
  /** For messages: `s3://bucket/prefix/path`. */
  where: string;
  /** When the upload or its last part was written (ms since the epoch). */
  lastWrittenMs: number;
  parts: number;
  bytes: number;
}

export interface IncompleteUploads {
  /** Nothing written to them for UPLOAD_IDLE_MS: clean aborts them. */
  stale: IncompleteUpload[];
  /** Written to more recently: a push may still be sending them; left alone. */
  recent: IncompleteUpload[];
  /** Incomplete uploads under a bucket's prefix outside the places persist writes: never touched. */
  elsewhere: number;
  /** Buckets whose uploads could not be listed, and why (`unsupported`: the store has no ListMultipartUploads). */
  failures: { bucket: string; message: string; unsupported: boolean }[];
}

/** Buckets whose incomplete uploads can be looked at: reached through their S3 API (a `local` bucket has none). */
function apiBuckets(env: ResolvedEnvironment, places: Places): ResolvedBucket[] {
  return Object.values(env.buckets).filter((bucket) => bucket.credentials !== undefined && bucket.mount?.backend !== 'local' && (places.deep.has(bucket.key) || places.shallow.has(bucket.key)));
}

function lastWritten(initiated: string, parts: PartInfo[]): number {
  return Math.max(Date.parse(initiated) || 0, ...parts.map((part) => Date.parse(part.lastModified) || 0));
}

function described(bucket: ResolvedBucket, upload: MultipartUploadInfo, parts: PartInfo[]): IncompleteUpload {
  const prefix = normalizePrefix(bucket.prefix);
  return {
    bucket: bucket.key,
    key: upload.key,
    uploadId: upload.uploadId,
    where: `${apiLabel(bucket)}/${upload.key.slice(prefix.length)}`,
    lastWrittenMs: lastWritten(upload.initiated, parts),
    parts: parts.length,
    bytes: parts.reduce((sum, part) => sum + part.size, 0),
  };
}

async function withClient<T>(bucket: ResolvedBucket, use: (client: S3Client) => Promise<T>): Promise<T> {
  const client = await clientFor(bucket);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/**
 * The incomplete multipart uploads where persist writes, in every bucket reached through its S3
 * API: one ListMultipartUploads under the bucket's prefix (paged), one ListParts per upload found
 * there (its size and when it was last written). Read-only. `nowMs`: this machine's clock.
 */
export async function findIncompleteUploads(env: ResolvedEnvironment, nowMs: number): Promise<IncompleteUploads> {
  const places = placesOf(env);
  const result: IncompleteUploads = { stale: [], recent: [], elsewhere: 0, failures: [] };
  for (const bucket of apiBuckets(env, places)) {
    try {
      await withClient(bucket, async (client) => {
        const prefix = normalizePrefix(bucket.prefix);
        const listed = await client.listAllMultipartUploads(prefix);
        const ours = listed.filter((upload) => upload.key.startsWith(prefix) && inPlaces(places, bucket.key, upload.key.slice(prefix.length)));
        result.elsewhere += listed.length - ours.length;
        const found = await mapLimit(ours, 8, async (upload) => {
          const parts = await client.listParts(upload.key, upload.uploadId);
          return parts === null ? null : described(bucket, upload, parts); // completed or aborted since the listing
        });
        for (const upload of found) {
          if (upload) (nowMs - upload.lastWrittenMs >= UPLOAD_IDLE_MS ? result.stale : result.recent).push(upload);
        }
      });
    } catch (error) {
      result.failures.push({ bucket: bucket.key, message: errorMessage(error), unsupported: (error as { code?: string }).code === 'NotImplemented' });
    }
  }
  const order = (a: IncompleteUpload, b: IncompleteUpload) => (a.where < b.where ? -1 : a.where > b.where ? 1 : a.uploadId < b.uploadId ? -1 : 1);
  result.stale.sort(order);
  result.recent.sort(order);
  return result;
}

export interface AbortResult {
  aborted: IncompleteUpload[];
  /** Completed or aborted by someone else since they were listed. */
  gone: number;
  /** Written to since they were listed: left alone. */
  busy: IncompleteUpload[];
  failures: { upload: IncompleteUpload; message: string }[];
}

/**
 * Aborts uploads found stale, each after a fresh look at its parts (right before, as clean
 * matches a file's name again): one written to since (within UPLOAD_IDLE_MS of `nowMs`) is left.
 */
export async function abortIncompleteUploads(env: ResolvedEnvironment, uploads: IncompleteUpload[], nowMs: number): Promise<AbortResult> {
  const result: AbortResult = { aborted: [], gone: 0, busy: [], failures: [] };
  for (const bucket of Object.values(env.buckets)) {
    const mine = uploads.filter((upload) => upload.bucket === bucket.key);
    if (mine.length === 0) continue;
    await withClient(bucket, (client) =>
      mapLimit(mine, 8, async (upload) => {
        try {
          const parts = await client.listParts(upload.key, upload.uploadId);
          if (parts === null) return void result.gone++;
          // The time it was last seen written to stands for its initiation: the later of the two and its parts' is what counts.
          const now = described(bucket, { key: upload.key, uploadId: upload.uploadId, initiated: new Date(upload.lastWrittenMs).toISOString() }, parts);
          if (nowMs - now.lastWrittenMs < UPLOAD_IDLE_MS) return void result.busy.push(now);
          if (await client.abortMultipartUpload(upload.key, upload.uploadId)) result.aborted.push(now);
          else result.gone++;
        } catch (error) {
          result.failures.push({ upload, message: errorMessage(error) });
        }
      }),
    ).catch((error: unknown) => {
      for (const upload of mine) result.failures.push({ upload, message: errorMessage(error) });
    });
  }
  return result;
}

function uploadLine(upload: IncompleteUpload, now: Date): string {
  const size = upload.parts === 0 ? 'no part sent' : `${formatBytes(upload.bytes)} in ${plural(upload.parts, 'part')}`;
  return `  ${upload.where}  (incomplete upload: ${size}, last written ${formatAge(upload.lastWrittenMs, now)} ago)`;
}

/** The lines clean prints about incomplete uploads ('' when there are none of any kind). */
export function renderIncompleteUploads(found: IncompleteUploads, now: Date): string {
  const lines: string[] = [];
  const idle = formatDuration(UPLOAD_IDLE_MS);
  if (found.stale.length) {
    const bytes = found.stale.reduce((sum, upload) => sum + upload.bytes, 0);
    lines.push(`${plural(found.stale.length, 'incomplete upload')} of persist in the bucket (parts an interrupted push or write sent and never completed, ${formatBytes(bytes)}):`);
    for (const upload of found.stale) lines.push(uploadLine(upload, now));
  }
  if (found.recent.length) {
    lines.push(`Left alone: ${plural(found.recent.length, 'incomplete upload')} written to in the last ${idle} (a push may still be sending ${found.recent.length === 1 ? 'it' : 'them'}; clean aborts one left for ${idle}):`);
    for (const upload of found.recent) lines.push(uploadLine(upload, now));
  }
  if (found.elsewhere) lines.push(`Left alone: ${plural(found.elsewhere, 'incomplete upload')} under the bucket's prefix outside the folders persist writes.`);
  for (const failure of found.failures) lines.push(`incomplete uploads not looked into in bucket ${failure.bucket}: ${failure.message}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}
