/**
 * Writes config/portway.schema.json: the config schema with each filter's and
 * each protocol's own schema attached (if type is X then X's schema), so an
 * editor with a YAML language server completes and checks the whole file.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigSchema } from './schema';
import { builtins } from '../builtins';

export function buildJsonSchema(): Record<string, unknown> {
  const b = builtins();
  const root = JSON.parse(JSON.stringify(ConfigSchema)) as Record<string, any>;
  root['$schema'] = 'http://json-schema.org/draft-07/schema#';
  const listener = root.properties.listeners.items;
  const filterItem = listener.properties.filters.items;
  filterItem.properties.type.enum = b.filters.types();
  filterItem.allOf = [...b.filters.specs().values()].map((f) => {
    const own = JSON.parse(JSON.stringify(f.schema)) as Record<string, any>;
    return {
      if: { properties: { type: { const: f.type } } },
      then: {
        description: f.description,
        properties: { type: true, name: true, ...(own.properties ?? {}) },
        ...(own.required ? { required: own.required } : {}),
        additionalProperties: false,
      },
    };
  });
  listener.properties.protocol.enum = [...b.protocols.specs().keys()];
  listener.allOf = [...b.protocols.specs().values()].map((p) => ({
    if: { properties: { protocol: { const: p.name } } },
    then: { properties: { options: JSON.parse(JSON.stringify(p.optionsSchema)) } },
  }));
  const attach = (node: Record<string, any>, specs: Iterable<{ type: string; description: string; schema: unknown }>, common: string[]) => {
    const list = [...specs];
    node.properties.type.enum = list.map((d) => d.type);
    node.allOf = list.map((d) => {
      const own = JSON.parse(JSON.stringify(d.schema)) as Record<string, any>;
      return {
        if: { properties: { type: { const: d.type } } },
        then: {
          description: d.description,
          properties: { ...Object.fromEntries(common.map((k) => [k, true])), ...(own.properties ?? {}) },
          ...(own.required ? { required: own.required } : {}),
          additionalProperties: false,
        },
      };
    });
  };
  const cluster = root.properties.clusters.items.properties;
  attach(cluster.discovery, b.discovery.specs().values(), ['type', 'initial_timeout']);
  attach(cluster.component, b.components.specs().values(), ['type']);
  return root;
}

if (require.main === module) {
  const out = resolve(__dirname, '../../../config/portway.schema.json');
  writeFileSync(out, JSON.stringify(buildJsonSchema(), null, 2) + '\n');
}
