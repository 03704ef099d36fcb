import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { availableParallelism } from 'node:os';
import { ConfigSchema, type RawConfig, type RawListener, type RawCluster, type RawStringMatch, type TSchema } from './schema';
import type { Config, ListenerConfig, ClusterConfig, RouteConfig, FilterConfig, OutlierConfig, ActiveHealthConfig } from './types';
import { parseDuration } from '../util/duration';
import { parseHostPort, Cidr } from '../util/address';
import { ORIGINAL_DST_ATTRIBUTES } from '../sidecar/destinations';

/** One problem in a config: where (a path like listeners[0].address) and why. */
export interface ConfigIssue {
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[], readonly file?: string) {
    super(`invalid configuration${file ? ` in ${file}` : ''}:\n` + issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
  }
}

/** What validation needs to know about a filter type. */
export interface FilterSpec {
  type: string;
  schema: TSchema;
  /** Semantic checks beyond the schema; returns reasons (paths relative to the filter entry). */
  check?(config: Record<string, unknown>, ctx: { listener: RawListener; clusters: ReadonlySet<string> }): ConfigIssue[];
}

/** What validation needs to know about a protocol. */
export interface ProtocolSpec {
  name: string;
  optionsSchema: TSchema;
  /** Route attribute names this protocol fills in. */
  attributes: readonly string[];
  check?(options: Record<string, unknown>, ctx: { listener: RawListener; clusters: ReadonlySet<string> }): ConfigIssue[];
}

/** What validation needs to know about a discovery source type. */
export interface DiscoverySpec {
  type: string;
  schema: TSchema;
  check?(config: Record<string, unknown>): ConfigIssue[];
}

export interface Registries {
  filters: ReadonlyMap<string, FilterSpec>;
  protocols: ReadonlyMap<string, ProtocolSpec>;
  discovery: ReadonlyMap<string, DiscoverySpec>;
  /** Component types; their spec has the same shape as a discovery source's. */
  components: ReadonlyMap<string, DiscoverySpec>;
  /** Active health check probe types; when absent the type is checked when the cluster is built. */
  healthProbes?: ReadonlyMap<string, unknown>;
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true, useDefaults: true });
ajv.addVocabulary(['x-hint']);

const compiled = new WeakMap<object, ValidateFunction>();
function validatorFor(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** "/listeners/0/address" -> "listeners[0].address" */
export function pointerToPath(pointer: string, base = ''): string {
  let out = base;
  for (const seg of pointer.split('/').slice(1)) {
    const s = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^[0-9]+$/.test(s)) out += `[${s}]`;
    else out += out ? `.${s}` : s;
  }
  return out;
}

function join(base: string, key: string): string {
  return base ? `${base}.${key}` : key;
}

function formatAjvErrors(errors: ErrorObject[] | null | undefined, base: string): ConfigIssue[] {
  if (!errors) return [];
  const issues: ConfigIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const path = pointerToPath(e.instancePath, base);
    let issue: ConfigIssue;
    const hint = (e.parentSchema as Record<string, unknown> | undefined)?.['x-hint'];
    switch (e.keyword) {
      case 'required':
        issue = { path: join(path, String(e.params.missingProperty)), message: 'is required' };
        break;
      case 'additionalProperties': {
        const allowed = Object.keys(((e.parentSchema as { properties?: object }) ?? {}).properties ?? {});
        issue = {
          path: join(path, String(e.params.additionalProperty)),
          message: `unknown property${allowed.length ? ` (expected one of: ${allowed.join(', ')})` : ''}`,
        };
        break;
      }
      case 'enum':
        issue = { path, message: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}` };
        break;
      case 'anyOf': {
        // A union of literals (an enum written with TypeBox): list the choices.
        const branches = ((e.parentSchema as { anyOf?: { const?: unknown }[] }) ?? {}).anyOf ?? [];
        const consts = branches.map((b) => b.const).filter((c) => c !== undefined);
        issue = { path, message: consts.length === branches.length ? `must be one of: ${consts.join(', ')}` : 'does not match any allowed form' };
        break;
      }
      case 'const':
        continue; // reported by the enclosing anyOf
      case 'pattern':
        issue = { path, message: typeof hint === 'string' ? hint : `must match ${String(e.params.pattern)}` };
        break;
      case 'type':
        issue = { path, message: typeof hint === 'string' ? hint : `must be ${String(e.params.type).replace(',', ' or ')}` };
        break;
      default:
        issue = { path, message: e.message ?? e.keyword };
    }
    const key = `${issue.path}\u0000${issue.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}

/** Validates a value against a schema, applying its defaults in place. */
export function validateAgainst(schema: TSchema, value: unknown, base: string): ConfigIssue[] {
  const v = validatorFor(schema);
  return v(value) ? [] : formatAjvErrors(v.errors, base);
}

function checkStringMatch(m: RawStringMatch, path: string, issues: ConfigIssue[]): void {
  const kinds = (['exact', 'prefix', 'suffix', 'regex', 'present'] as const).filter((k) => m[k] !== undefined);
  if (kinds.length !== 1) {
    issues.push({ path, message: `give exactly one of exact, prefix, suffix, regex or present (got ${kinds.length ? kinds.join(', ') : 'none'})` });
  }
  if (m.regex !== undefined) {
    try {
      new RegExp(m.regex);
    } catch (err) {
      issues.push({ path: join(path, 'regex'), message: `invalid regular expression: ${(err as Error).message}` });
    }
  }
}

function wildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === 'object' && !Array.isArray(val)) {
      const o = val as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
    }
    return val;
  });
}

/**
 * Validates a parsed config document and returns it normalized. Collects every
 * problem (schema, each filter's schema, cross references) before failing.
 */
export function validateConfig(doc: unknown, reg: Registries, file?: string): Config {
  if (doc === null || doc === undefined) doc = {};
  const issues = validateAgainst(ConfigSchema, doc, '');
  const schemaFailed = issues.length > 0;
  const raw = doc as RawConfig;
  try {
    checkSemantics(raw, reg, issues);
  } catch (err) {
    // Cross-reference checks assume the schema held; with schema errors they are best effort.
    if (!schemaFailed) throw err;
  }
  if (issues.length) throw new ConfigError(issues, file);
  return normalize(raw, file);
}

function checkSemantics(raw: RawConfig, reg: Registries, issues: ConfigIssue[]): void {
  if (typeof raw !== 'object' || raw === null) return;

  const listeners = Array.isArray(raw.listeners) ? raw.listeners : [];
  const clusters = Array.isArray(raw.clusters) ? raw.clusters : [];
  const clusterNames = new Set<string>();

  clusters.forEach((c, i) => {
    const p = `clusters[${i}]`;
    if (clusterNames.has(c.name)) issues.push({ path: `${p}.name`, message: `duplicate cluster name '${c.name}'` });
    clusterNames.add(c.name);
    const sources = (['endpoints', 'discovery', 'component'] as const).filter((k) => c[k] !== undefined);
    if (sources.length > 1) {
      issues.push({ path: p, message: `give one of endpoints, discovery or component (got ${sources.join(', ')})` });
    } else if (c.original_dst === true) {
      if (sources.length > 0 || c.sharding !== undefined) issues.push({ path: `${p}.original_dst`, message: `an original_dst cluster takes no ${[...sources, ...(c.sharding !== undefined ? ['sharding'] : [])].join(', ')}: its endpoint is each connection's original destination` });
    } else if (c.discovery === undefined && c.component === undefined && (c.endpoints === undefined || c.endpoints.length === 0)) {
      issues.push({ path: `${p}.endpoints`, message: 'a cluster needs at least one endpoint (or a discovery source, or a component)' });
    }
    if (c.sharding !== undefined) {
      if (c.discovery !== undefined || c.component !== undefined) issues.push({ path: `${p}.sharding`, message: 'sharding needs static endpoints (the shard order is the order written)' });
      if (c.sharding.hash_tag !== undefined && Buffer.byteLength(c.sharding.hash_tag) !== 2) {
        issues.push({ path: `${p}.sharding.hash_tag`, message: 'must be two single-byte characters, such as "{}"' });
      }
      const shardNames = new Set<string>();
      (c.endpoints ?? []).forEach((e, j) => {
        const n = typeof e === 'string' ? e : (e.name ?? e.address);
        if (shardNames.has(n)) issues.push({ path: `${p}.endpoints[${j}]`, message: `two shards are named '${n}'; give them distinct names` });
        shardNames.add(n);
      });
    }
    const hc = c.health_check;
    if (hc?.outlier) {
      const o = hc.outlier;
      if (parseDuration(o.max_ejection_time ?? '300s') < parseDuration(o.base_ejection_time ?? '30s')) {
        issues.push({ path: `${p}.health_check.outlier.max_ejection_time`, message: 'must not be shorter than base_ejection_time' });
      }
    }
    if (hc?.active) {
      if (reg.healthProbes && !reg.healthProbes.has(hc.active.type)) {
        issues.push({ path: `${p}.health_check.active.type`, message: `unknown health check type '${hc.active.type}' (known: ${[...reg.healthProbes.keys()].join(', ') || 'none'})` });
      }
      if (parseDuration(hc.active.interval ?? '10s') <= 0) issues.push({ path: `${p}.health_check.active.interval`, message: 'must be more than 0' });
      if (parseDuration(hc.active.timeout ?? '2s') <= 0) issues.push({ path: `${p}.health_check.active.timeout`, message: 'must be more than 0' });
    }
    if (c.component !== undefined) {
      const cp = `${p}.component`;
      const spec = reg.components.get(c.component.type);
      if (!spec) {
        issues.push({ path: `${cp}.type`, message: `unknown component type '${c.component.type}' (known: ${[...reg.components.keys()].join(', ') || 'none'})` });
      } else {
        const { type: _t, ...own } = c.component as Record<string, unknown>;
        const cIssues = validateAgainst(spec.schema, own, cp);
        issues.push(...cIssues);
        if (!cIssues.length && spec.check) for (const iss of spec.check(own)) issues.push({ path: join(cp, iss.path), message: iss.message });
        Object.assign(c.component, own);
      }
    }
    if (c.discovery !== undefined) {
      const dp = `${p}.discovery`;
      const spec = reg.discovery.get(c.discovery.type);
      if (!spec) {
        issues.push({ path: `${dp}.type`, message: `unknown discovery type '${c.discovery.type}' (known: ${[...reg.discovery.keys()].join(', ') || 'none'})` });
      } else {
        const { type: _t, initial_timeout: _i, ...own } = c.discovery as Record<string, unknown>;
        const dIssues = validateAgainst(spec.schema, own, dp);
        issues.push(...dIssues);
        if (!dIssues.length && spec.check) for (const iss of spec.check(own)) issues.push({ path: join(dp, iss.path), message: iss.message });
        Object.assign(c.discovery, own);
      }
    }
    (c.endpoints ?? []).forEach((e, j) => {
      const addr = typeof e === 'string' ? e : e.address;
      const hp = parseHostPort(addr);
      if (typeof hp === 'string') issues.push({ path: `${p}.endpoints[${j}]${typeof e === 'string' ? '' : '.address'}`, message: hp });
      else if (hp.port === 0) issues.push({ path: `${p}.endpoints[${j}]`, message: 'port 0 is not a valid upstream port' });
    });
  });

  const adminAddr = raw.admin?.address ?? '127.0.0.1:9901';
  const adminEnabled = raw.admin?.enabled ?? true;
  const adminHp = parseHostPort(adminAddr);
  if (typeof adminHp === 'string') issues.push({ path: 'admin.address', message: adminHp });

  const names = new Set<string>();
  const bound: { host: string; port: number; path: string; name: string }[] = [];
  if (adminEnabled && typeof adminHp !== 'string' && adminHp.port !== 0) bound.push({ ...adminHp, path: 'admin.address', name: 'admin' });

  listeners.forEach((l, i) => {
    const p = `listeners[${i}]`;
    if (names.has(l.name)) issues.push({ path: `${p}.name`, message: `duplicate listener name '${l.name}'` });
    names.add(l.name);

    const hp = parseHostPort(l.address);
    if (typeof hp === 'string') issues.push({ path: `${p}.address`, message: hp });
    else if (hp.port !== 0) {
      const clash = bound.find((b) => b.port === hp.port && (b.host === hp.host || wildcard(b.host) || wildcard(hp.host)));
      if (clash) issues.push({ path: `${p}.address`, message: `${l.address} is also used by ${clash.name} (${clash.path})` });
      bound.push({ ...hp, path: `${p}.address`, name: `listener '${l.name}'` });
    }

    const proto = reg.protocols.get(l.protocol);
    if (!proto) {
      issues.push({ path: `${p}.protocol`, message: `unknown protocol '${l.protocol}' (known: ${[...reg.protocols.keys()].join(', ')})` });
    } else {
      const opts = (l.options ??= {});
      const optIssues = validateAgainst(proto.optionsSchema, opts, `${p}.options`);
      issues.push(...optIssues);
      if (!optIssues.length && proto.check) {
        for (const iss of proto.check(opts, { listener: l, clusters: clusterNames })) issues.push({ path: join(`${p}.options`, iss.path), message: iss.message });
      }
    }

    (l.filters ?? []).forEach((f, j) => {
      const fp = `${p}.filters[${j}]`;
      const spec = reg.filters.get(f.type);
      if (!spec) {
        issues.push({ path: `${fp}.type`, message: `unknown filter type '${f.type}' (known: ${[...reg.filters.keys()].join(', ')})` });
        return;
      }
      const { type: _t, name: _n, ...own } = f as Record<string, unknown>;
      // Name the filter in each message, so an operator sees which filter's field is wrong.
      const who = typeof _n === 'string' ? `filter ${f.type} '${_n}'` : `filter ${f.type}`;
      const fIssues = validateAgainst(spec.schema, own, fp);
      for (const iss of fIssues) issues.push({ path: iss.path, message: `${who}: ${iss.message}` });
      if (!fIssues.length && spec.check) {
        for (const iss of spec.check(own, { listener: l, clusters: clusterNames })) issues.push({ path: join(fp, iss.path), message: `${who}: ${iss.message}` });
      }
      Object.assign(f, own); // keep defaults applied by the filter schema
    });

    (l.routes ?? []).forEach((r, j) => {
      const rp = `${p}.routes[${j}]`;
      if ((r.cluster === undefined) === (r.weighted_clusters === undefined)) {
        issues.push({ path: rp, message: 'give exactly one of cluster or weighted_clusters' });
      }
      if (r.cluster !== undefined && !clusterNames.has(r.cluster)) issues.push({ path: `${rp}.cluster`, message: `unknown cluster '${r.cluster}'` });
      (r.weighted_clusters ?? []).forEach((w, k) => {
        if (!clusterNames.has(w.cluster)) issues.push({ path: `${rp}.weighted_clusters[${k}].cluster`, message: `unknown cluster '${w.cluster}'` });
      });
      (r.match?.source_cidr ?? []).forEach((c, k) => {
        try {
          new Cidr(c);
        } catch (err) {
          issues.push({ path: `${rp}.match.source_cidr[${k}]`, message: (err as Error).message });
        }
      });
      for (const [attr, m] of Object.entries(r.match?.attributes ?? {})) {
        const ap = `${rp}.match.attributes.${attr}`;
        if (proto && !proto.attributes.includes(attr) && !(l.original_dst === true && ORIGINAL_DST_ATTRIBUTES.includes(attr as never))) {
          issues.push({ path: ap, message: `protocol '${l.protocol}' has no attribute '${attr}' (known: ${proto.attributes.join(', ') || 'none'})` });
        }
        checkStringMatch(m, ap, issues);
      }
    });
  });

}

function normalize(raw: RawConfig, file?: string): Config {
  const admin = parseHostPort(raw.admin?.address ?? '127.0.0.1:9901') as { host: string; port: number };
  return {
    admin: { enabled: raw.admin?.enabled ?? true, address: raw.admin?.address ?? '127.0.0.1:9901', ...admin },
    logLevel: raw.log?.level ?? 'info',
    reload: { watch: raw.reload?.watch ?? false, debounceMs: parseDuration(raw.reload?.debounce ?? '250ms') },
    drainTimeoutMs: parseDuration(raw.drain_timeout ?? '30s'),
    workers: raw.workers === 'auto' ? availableParallelism() : (raw.workers ?? 1),
    listeners: (raw.listeners ?? []).map(normalizeListener),
    clusters: (raw.clusters ?? []).map(normalizeCluster),
    ...(file !== undefined ? { sourcePath: file } : {}),
    raw,
  };
}

function normalizeListener(l: RawListener): ListenerConfig {
  const hp = parseHostPort(l.address) as { host: string; port: number };
  const filters: FilterConfig[] = (l.filters ?? []).map((f) => {
    const { type, name, ...config } = f as Record<string, unknown> & { type: string; name?: string };
    return { type, name: name ?? type, config };
  });
  const routes: RouteConfig[] = (l.routes ?? []).map((r, i) => ({
    name: r.name ?? `route-${i}`,
    sourceCidr: r.match?.source_cidr ?? [],
    attributes: r.match?.attributes ?? {},
    clusters: r.cluster !== undefined ? [{ cluster: r.cluster, weight: 1 }] : (r.weighted_clusters ?? []),
  }));
  return {
    name: l.name,
    address: l.address,
    host: hp.host,
    port: hp.port,
    protocol: l.protocol,
    filters,
    routes,
    idleTimeoutMs: parseDuration(l.idle_timeout ?? '1h'),
    maxConnections: l.max_connections ?? 0,
    options: (l.options ?? {}) as Record<string, unknown>,
    originalDst: l.original_dst === true ? { direct: l.original_dst_direct ?? 'refuse' } : null,
    fingerprint: stableJson(l),
  };
}

function normalizeCluster(c: RawCluster): ClusterConfig {
  return {
    name: c.name,
    ...(c.original_dst === true ? { originalDst: true } : {}),
    discovery: c.discovery
      ? (() => {
          const { type, initial_timeout, ...config } = c.discovery as Record<string, unknown> & { type: string; initial_timeout?: string | number };
          return { type, initialTimeoutMs: parseDuration(initial_timeout ?? '5s'), config };
        })()
      : null,
    component: c.component
      ? (() => {
          const { type, ...config } = c.component as Record<string, unknown> & { type: string };
          return { type, config };
        })()
      : null,
    endpoints: (c.endpoints ?? []).map((e) => {
      const address = typeof e === 'string' ? e : e.address;
      const hp = parseHostPort(address) as { host: string; port: number };
      return {
        address,
        host: hp.host,
        port: hp.port,
        weight: typeof e === 'string' ? 1 : (e.weight ?? 1),
        ...(typeof e !== 'string' && e.name !== undefined ? { name: e.name } : {}),
      };
    }),
    sharding: c.sharding ? { hash: c.sharding.hash ?? 'fnv1a_64', distribution: c.sharding.distribution ?? 'ketama', hashTag: c.sharding.hash_tag ?? null, autoEject: c.sharding.auto_eject ?? false } : null,
    lb: c.lb ?? 'round_robin',
    connectTimeoutMs: parseDuration(c.connect_timeout ?? '5s'),
    maxConnectAttempts: c.max_connect_attempts ?? 3,
    dnsRefreshMs: parseDuration(c.dns_refresh ?? '30s'),
    passive: {
      consecutiveFailures: c.health_check?.passive?.consecutive_failures ?? 1,
      ejectionTimeMs: parseDuration(c.health_check?.passive?.ejection_time ?? '5s'),
    },
    outlier: normalizeOutlier(c),
    active: normalizeActive(c),
    limits: {
      maxConnections: c.limits?.max_connections ?? 10000,
      maxPendingRequests: c.limits?.max_pending_requests ?? 1024,
      maxConnectionsPerEndpoint: c.limits?.max_connections_per_endpoint ?? 16,
      poolIdleTimeoutMs: parseDuration(c.limits?.pool_idle_timeout ?? '60s'),
    },
    fingerprint: stableJson(c),
  };
}

function normalizeOutlier(c: RawCluster): OutlierConfig | null {
  const o = c.health_check?.outlier;
  if (!o) return null;
  return {
    consecutiveErrors: o.consecutive_errors ?? 5,
    errorRate: o.error_rate ? { minRequests: o.error_rate.min_requests ?? 20, thresholdPercent: o.error_rate.threshold_percent ?? 30 } : null,
    intervalMs: parseDuration(o.interval ?? '10s'),
    baseEjectionTimeMs: parseDuration(o.base_ejection_time ?? '30s'),
    maxEjectionTimeMs: parseDuration(o.max_ejection_time ?? '300s'),
    maxEjectionPercent: o.max_ejection_percent ?? 10,
  };
}

function normalizeActive(c: RawCluster): ActiveHealthConfig | null {
  const a = c.health_check?.active;
  if (!a) return null;
  const j = a.jitter ?? '10%';
  return {
    type: a.type,
    intervalMs: parseDuration(a.interval ?? '10s'),
    jitter: (typeof j === 'number' ? j : Number.parseFloat(j)) / 100,
    timeoutMs: parseDuration(a.timeout ?? '2s'),
    healthyThreshold: a.healthy_threshold ?? 2,
    unhealthyThreshold: a.unhealthy_threshold ?? 3,
    ...(a.path !== undefined ? { path: a.path } : {}),
    ...(a.host !== undefined ? { host: a.host } : {}),
    ...(a.expected_statuses !== undefined
      ? {
          expectedStatuses: a.expected_statuses.map((e): [number, number] => {
            const [lo, hi = lo] = String(e).split('-').map(Number) as [number, number?];
            return [Math.min(lo, hi), Math.max(lo, hi)];
          }),
        }
      : {}),
  };
}
