/**
 * Active health check for HTTP endpoints: `GET <path>` on a fresh
 * connection (Connection: close), healthy when the status is in one of the
 * expected ranges. Only the status line is read.
 *
 *   request:  GET /healthz HTTP/1.1\r\nHost: <host>\r\nUser-Agent: portway-health-check\r\nConnection: close\r\n\r\n
 *   reply:    HTTP/1.1 200 OK\r\n...
 *
 * Config (health_check.active): type: http, path (default /), host (the
 * Host header; default the endpoint address), expected_statuses (statuses
 * or "lo-hi" ranges; default 200-399).
 */
import type { ActiveHealthConfig } from '../../config/types';
import type { HealthProbe } from '../../routing/health/probe';
import { probeConnection } from '../../routing/health/probe';

const DEFAULT_STATUSES: readonly (readonly [number, number])[] = [[200, 399]];

/** "200", 204, "200-299" -> [lo, hi] ranges; throws on anything else. */
export function parseStatusRanges(list: readonly (number | string)[]): [number, number][] {
  return list.map((e) => {
    const m = /^([1-5][0-9]{2})(?:-([1-5][0-9]{2}))?$/.exec(String(e));
    if (m === null) throw new Error(`'${e}' is not a status or a range like 200-299`);
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    if (hi < lo) throw new Error(`'${e}': the range ends before it starts`);
    return [lo, hi];
  });
}

const STATUS_LINE = /^HTTP\/1\.[01] ([0-9]{3})/;

export const httpHealthProbe: HealthProbe = {
  type: 'http',
  description: 'GET of a path; healthy when the status is expected (default 200-399).',
  check: (target, timeoutMs, cfg?: ActiveHealthConfig) => {
    const path = cfg?.path ?? '/';
    const host = cfg?.host ?? target.address;
    const ranges = cfg?.expectedStatuses ?? DEFAULT_STATUSES;
    const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: portway-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n`, 'latin1');
    return probeConnection(target, timeoutMs, (sock, done) => {
      let got = '';
      sock.on('data', (chunk: Buffer) => {
        got += chunk.toString('latin1');
        const eol = got.indexOf('\r\n');
        if (eol < 0) {
          if (got.length > 1024) done(new Error('status line too long'));
          return;
        }
        const m = STATUS_LINE.exec(got.slice(0, eol));
        if (m === null) {
          done(new Error(`not an HTTP response: ${JSON.stringify(got.slice(0, Math.min(eol, 80)))}`));
          return;
        }
        const status = Number(m[1]);
        done(ranges.some(([lo, hi]) => status >= lo && status <= hi) ? null : new Error(`GET ${path} answered ${status}`));
      });
      sock.write(request);
    });
  },
};
