// The schema's backend parts are generated from the backends' option tables (src/backends/schema.ts)
// into schemas/persist.schema.json, which stays committed: `persist schema` prints it and editors
// read it. `node scripts/schema.mjs` rewrites the file; `--check` exits 1 when it is out of date
// (the build runs the check, and test/backends/schema.test.ts does the same).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const schemaFile = join(root, 'schemas', 'persist.schema.json');

/** The committed schema's text and the text it should have. */
export async function backendSchema() {
  const dir = mkdtempSync(join(tmpdir(), 'persist-schema-'));
  try {
    const outfile = join(dir, 'schema.mjs');
    await build({ entryPoints: [join(root, 'src', 'backends', 'schema.ts')], outfile, bundle: true, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
    const { withBackendParts, schemaText } = await import(pathToFileURL(outfile).href);
    const current = readFileSync(schemaFile, 'utf8');
    return { current, wanted: schemaText(withBackendParts(JSON.parse(current))) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const OUT_OF_DATE = "schemas/persist.schema.json is out of date with the backends' option tables (src/backends/*.ts); run `npm run schema` and commit it";

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { current, wanted } = await backendSchema();
  if (process.argv.includes('--check')) {
    if (current !== wanted) {
      console.error(OUT_OF_DATE);
      process.exit(1);
    }
  } else if (current !== wanted) {
    writeFileSync(schemaFile, wanted);
    console.log('updated schemas/persist.schema.json');
  }
}
