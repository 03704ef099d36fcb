/**
 * Active health check for Redis endpoints: PING on a fresh connection,
 * healthy when the first reply is +PONG. A hung server (connection accepted
 * by the kernel, no answer) fails by timeout. Servers requiring AUTH answer
 * -NOAUTH and count as unhealthy: AUTH is not sent yet.
 *
 *   request:  *1\r\n$4\r\nPING\r\n
 *   reply:    +PONG\r\n
 */
import type { HealthProbe } from '../../routing/health/probe';
import { probeConnection } from '../../routing/health/probe';

const PING = Buffer.from('*1\r\n$4\r\nPING\r\n', 'latin1');

export const redisHealthProbe: HealthProbe = {
  type: 'redis',
  description: 'Sends PING, expects +PONG.',
  check: (target, timeoutMs) =>
    probeConnection(target, timeoutMs, (sock, done) => {
      let got = '';
      sock.on('data', (chunk: Buffer) => {
        got += chunk.toString('latin1');
        const eol = got.indexOf('\r\n');
        if (eol < 0) {
          if (got.length > 512) done(new Error('reply to PING too long'));
          return;
        }
        const line = got.slice(0, eol);
        done(line === '+PONG' ? null : new Error(`PING answered ${JSON.stringify(line.slice(0, 100))}`));
      });
      sock.write(PING);
    }),
};
