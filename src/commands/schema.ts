// `persist schema`: print the JSON Schema of the spec format (for editors and other tools).
import schema from '../../schemas/persist.schema.json' with { type: 'json' };
import type { CommandIO } from './types.js';

export default async function printSchema(_opts: Record<string, never>, io: CommandIO): Promise<number> {
  io.out(`${JSON.stringify(schema, null, 2)}\n`);
  return 0;
}
