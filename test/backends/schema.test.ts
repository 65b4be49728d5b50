// The committed schema's backend parts are generated from the drivers' option tables
// (src/backends/schema.ts); this fails when a table changed and `npm run schema` was not run.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BACKEND_NAMES, backends } from '../../src/backends/registry.js';
import { schemaText, withBackendParts } from '../../src/backends/schema.js';
import { OVERLAY_KEYS, SECTION_NAMES } from '../../src/spec/sections.js';

const ROOT = join(import.meta.dirname, '..', '..');
const committed = readFileSync(join(ROOT, 'schemas', 'persist.schema.json'), 'utf8');
const schema = JSON.parse(committed) as { properties: Record<string, unknown>; $defs: Record<string, { properties?: Record<string, unknown>; enum?: unknown }> };

describe('schemas/persist.schema.json', () => {
  it('holds the backend parts made from the registry (else: npm run schema)', () => {
    expect(committed).toBe(schemaText(withBackendParts(JSON.parse(committed))));
  });

  it('names every backend of the registry, each with its options', () => {
    expect(schema.$defs.mountBody?.properties?.backend).toMatchObject({ enum: BACKEND_NAMES });
    for (const name of BACKEND_NAMES) {
      expect(Object.keys(schema.$defs[`${name}Options`]?.properties ?? {})).toEqual(Object.keys(backends[name].options));
    }
  });

  it('lets environments overlay exactly the sections the resolver reads', () => {
    expect(Object.keys(schema.$defs.environment?.properties ?? {})).toEqual([...OVERLAY_KEYS]);
    for (const section of SECTION_NAMES) expect(schema.properties).toHaveProperty(section);
  });
});
