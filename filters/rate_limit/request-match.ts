/**
 * The `match` block of the rate_limit and fault filters. It has the shape and
 * the semantics of a route's match (attributes tested with StringMatch, client
 * source_cidr), so a condition copied from a route selects the same requests.
 * The string tests are the router's own compileStringMatch, not a copy.
 *
 * It lives here rather than in src/ because this change may only touch the
 * filter folders; fault imports it from here.
 */
import { Type, type Static } from '@sinclair/typebox';
import { StringMatch, type RawStringMatch } from '../../src/config/schema';
import type { ConfigIssue } from '../../src/config/validate';
import type { Exchange } from '../../src/exchange';
import { Cidr } from '../../src/util/address';
import { compileStringMatch } from '../router';

export const RequestMatchSchema = Type.Object(
  {
    attributes: Type.Optional(
      Type.Record(Type.String(), StringMatch, {
        description: "Request attributes the protocol exposes (e.g. redis 'key', 'command'; bolt 'service'). All must match.",
      }),
    ),
    source_cidr: Type.Optional(Type.Array(Type.String(), { description: 'The client address is inside one of these CIDRs.' })),
  },
  { additionalProperties: false, description: 'Only requests for which all given conditions hold are affected. Missing or empty: every request.' },
);

export type RequestMatch = Static<typeof RequestMatchSchema>;

const MATCH_KINDS = ['exact', 'prefix', 'suffix', 'regex', 'present'] as const;

function checkStringMatch(m: RawStringMatch, path: string, issues: ConfigIssue[]): void {
  // The schema cannot say "exactly one of"; the listener validator checks route matches the same way.
  const kinds = MATCH_KINDS.filter((k) => m[k] !== undefined);
  if (kinds.length !== 1) {
    issues.push({ path, message: `give exactly one of exact, prefix, suffix, regex or present (got ${kinds.length ? kinds.join(', ') : 'none'})` });
  }
  if (m.regex !== undefined) {
    try {
      new RegExp(m.regex);
    } catch (err) {
      issues.push({ path: `${path}.regex`, message: `invalid regular expression: ${(err as Error).message}` });
    }
  }
}

/** Semantic checks of a match block at `path` (relative to the filter entry). */
export function checkRequestMatch(m: RequestMatch | undefined, path = 'match'): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (m === undefined) return issues;
  for (const [attr, sm] of Object.entries(m.attributes ?? {})) checkStringMatch(sm, `${path}.attributes.${attr}`, issues);
  (m.source_cidr ?? []).forEach((c, i) => {
    try {
      new Cidr(c);
    } catch (err) {
      issues.push({ path: `${path}.source_cidr[${i}]`, message: (err as Error).message });
    }
  });
  return issues;
}

/** Compiles a match block once per config generation; null when it matches everything (the caller skips the test). */
export function compileRequestMatch(m: RequestMatch | undefined): ((ex: Exchange) => boolean) | null {
  if (m === undefined) return null;
  const preds: ((ex: Exchange) => boolean)[] = [];
  const cidrs = (m.source_cidr ?? []).map((c) => new Cidr(c));
  if (cidrs.length > 0) preds.push((ex) => cidrs.some((c) => c.contains(ex.clientAddress)));
  for (const [attr, sm] of Object.entries(m.attributes ?? {})) {
    const test = compileStringMatch(sm);
    preds.push((ex) => test(ex.attr(attr)));
  }
  if (preds.length === 0) return null;
  if (preds.length === 1) return preds[0]!;
  return (ex) => {
    for (let i = 0; i < preds.length; i++) if (!preds[i]!(ex)) return false;
    return true;
  };
}
