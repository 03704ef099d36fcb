/**
 * String matchers of the config (`exact`, `prefix`, `suffix`, `regex`,
 * `present`, each optionally `invert`ed), compiled once per generation. Used
 * by the router, rate-limit matching, HTTP routes and protocol detection.
 */
import type { RawStringMatch } from '../config/schema';

export function compileStringMatch(m: RawStringMatch): (v: string | undefined) => boolean {
  let f: (v: string | undefined) => boolean;
  if (m.exact !== undefined) {
    const s = m.exact;
    f = (v) => v === s;
  } else if (m.prefix !== undefined) {
    const s = m.prefix;
    f = (v) => v !== undefined && v.startsWith(s);
  } else if (m.suffix !== undefined) {
    const s = m.suffix;
    f = (v) => v !== undefined && v.endsWith(s);
  } else if (m.regex !== undefined) {
    const re = new RegExp(m.regex);
    f = (v) => v !== undefined && re.test(v);
  } else {
    const want = m.present !== false;
    f = (v) => (v !== undefined) === want;
  }
  if (m.invert) {
    const inner = f;
    f = (v) => !inner(v);
  }
  return f;
}
