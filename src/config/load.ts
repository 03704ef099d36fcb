import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { ConfigError, validateConfig, type Registries } from './validate';
import type { Config } from './types';

/** Parses YAML (JSON is accepted, being YAML) and reports syntax errors with line and column. */
export function parseConfigText(text: string, file?: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(syntax)',
        message: e.message.split('\n')[0] ?? e.message,
      })),
      file,
    );
  }
  return doc.toJS({ maxAliasCount: 100 });
}

export function loadConfigFile(path: string, reg: Registries): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }], path);
  }
  return validateConfig(parseConfigText(text, path), reg, path);
}

export function loadConfigText(text: string, reg: Registries, file?: string): Config {
  return validateConfig(parseConfigText(text, file), reg, file);
}
