import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/load';
import { ConfigError, type ConfigIssue } from '../../src/config/validate';
import { builtins } from '../../src/builtins';
import { ProxyError } from '../../src/errors';
import { MetricsRegistry } from '../../src/metrics';
import { createLogger } from '../../src/logger';
import type { FilterFactory } from '../../src/filter';
import type { Cluster } from '../../src/routing/cluster';

/** Shared config, context and chain builders of the filter (and config validation) unit tests. */

export const reg = builtins().registries;

/** A tcp listener 'l1' whose chain is the one filter (a YAML flow mapping), routed to cluster 'c'. */
export function filterConfig(filter: string, extraClusters = ''): string {
  return `listeners:
  - name: l1
    address: 127.0.0.1:7000
    protocol: tcp
    filters:
      - ${filter}
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: ["127.0.0.1:6379"] }
${extraClusters}`;
}

/** Builds the filter at `slot` of the first listener of `configText` the way the proxy does. */
export function buildFilter<F>(
  factory: FilterFactory<any>,
  configText: string,
  opts: { metrics?: MetricsRegistry; slot?: number; clusters?: Map<string, Cluster> } = {},
): F {
  const cfg = loadConfigText(configText, reg);
  const l = cfg.listeners[0]!;
  const slot = opts.slot ?? 0;
  const fc = l.filters[slot]!;
  const ctx = { listener: l, clusters: opts.clusters ?? new Map(), metrics: opts.metrics ?? new MetricsRegistry(), logger: createLogger('silent'), slot, name: fc.name };
  return factory.create(fc.config as never, ctx) as F;
}

/** The issues of the ConfigError loading `text` throws (fails the test if it loads). */
export function issuesOf(text: string): ConfigIssue[] {
  try {
    loadConfigText(text, reg);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

/** Asserts an issue exists at exactly `path` whose message matches `message`. */
export function hasIssue(issues: ConfigIssue[], path: string, message: RegExp): void {
  assert.ok(
    issues.some((i) => i.path === path && message.test(i.message)),
    `expected an issue at '${path}' matching ${message}; got:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
  );
}

/** The value of one metric series in the registry's text rendering (0 when absent). */
export function metric(m: MetricsRegistry, name: string, labels: string): number {
  const line = m.render().split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Settles like p, or fails the test after ms. */
export function bounded<T>(p: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
    }),
  ]);
}

/** The ProxyError p rejects with (fails the test if it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<ProxyError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProxyError) return e;
    throw e;
  }
  assert.fail('expected a rejection');
}

/** Like rejectionOf, bounded: fails the test if p does not settle within 5 s. */
export function rejection(p: Promise<unknown>): Promise<ProxyError> {
  return rejectionOf(bounded(p));
}
