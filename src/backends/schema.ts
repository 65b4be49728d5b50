// The schema's backend parts, made from the registry: the backend enum, the per-backend `if/then`
// that picks the options definition, each backend's options definition (from its driver's
// options table, with the items each list option refuses) and the duration definition.
// scripts/schema.mjs writes them into schemas/persist.schema.json (the committed source of
// truth that `persist schema` prints and editors read) or checks that they are up to date;
// test/backends/schema.test.ts fails when they are not. Build and tests only: never loaded by the CLI.
import { DURATION_DESCRIPTION, DURATION_PATTERN } from '../spec/duration.js';
import { optionsDefinition, type OptionSpec, type OptionsTable } from './options.js';
import { BACKEND_NAMES, backends } from './registry.js';

type SchemaNode = { [keyword: string]: unknown };

function optionSchema(option: OptionSpec): SchemaNode {
  const { type, description } = option;
  let node: SchemaNode;
  if (typeof type === 'object') node = { description, enum: [...type.oneOf] };
  else {
    switch (type) {
      case 'boolean':
        node = { description, type: 'boolean' };
        break;
      case 'integer':
        node = { description, type: 'integer', minimum: 0 };
        break;
      case 'duration':
        node = { description, $ref: '#/$defs/duration' };
        break;
      case 'path':
        node = { description, type: 'string', pattern: '\\S' };
        break;
      case 'arguments': {
        // The very patterns the mount-time check uses (options.ts), so both refuse the same items.
        const refused = option.refuse?.length
          ? { not: { description: 'Items persist refuses (see the option\'s description).', anyOf: option.refuse.map(({ pattern }) => ({ type: 'string', pattern })) } }
          : {};
        node = { description, type: 'array', items: { type: 'string', pattern: '\\S', ...refused } };
        break;
      }
    }
  }
  return option.default === undefined ? node : { ...node, default: option.default };
}

function optionsSchema(backend: string, table: OptionsTable): SchemaNode {
  const keys = Object.keys(table);
  if (keys.length === 0) return { description: `The ${backend} backend takes no options.`, type: 'object', maxProperties: 0 };
  return {
    description: `Options of the ${backend} backend.`,
    type: 'object',
    properties: Object.fromEntries(keys.map((key) => [key, optionSchema(table[key]!)])),
    additionalProperties: false,
  };
}

function pickOptions(backend: string): SchemaNode {
  return {
    if: { type: 'object', properties: { backend: { const: backend } }, required: ['backend'] },
    then: { type: 'object', properties: { options: { $ref: `#/$defs/${optionsDefinition(backend)}` } } },
  };
}

/** `schema` with its backend parts made afresh from the registry; everything else as it is. */
export function withBackendParts(schema: SchemaNode): SchemaNode {
  const defs = schema.$defs as Record<string, SchemaNode>;
  const mountBody = defs.mountBody as SchemaNode & { properties: Record<string, SchemaNode> };
  const generated: Record<string, SchemaNode> = {
    duration: { description: DURATION_DESCRIPTION, type: 'string', pattern: DURATION_PATTERN },
    mountBody: {
      ...mountBody,
      properties: { ...mountBody.properties, backend: { ...mountBody.properties.backend, enum: [...BACKEND_NAMES] } },
      allOf: BACKEND_NAMES.map(pickOptions),
    },
  };
  // Refused items used to be one definition shared by every backend; each list option now carries its own.
  const dropped = new Set(['forbiddenMountArgument']);
  const optionDefs = Object.fromEntries(BACKEND_NAMES.map((name) => [optionsDefinition(name), optionsSchema(name, backends[name].options)]));
  // The options definitions go where the first of the old ones was (else after the mount's).
  const isOptions = (key: string) => key.endsWith('Options');
  const anchor = Object.keys(defs).find(isOptions) ?? 'mountBody';
  const out: Record<string, SchemaNode> = {};
  for (const [key, value] of Object.entries(defs)) {
    if (dropped.has(key)) continue;
    if (key === anchor && isOptions(key)) Object.assign(out, optionDefs);
    if (!isOptions(key)) out[key] = generated[key] ?? value;
    if (key === anchor && !isOptions(key)) Object.assign(out, optionDefs);
  }
  return { ...schema, $defs: out };
}

/** The schema file's text: two-space JSON and a final newline. */
export function schemaText(schema: SchemaNode): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
