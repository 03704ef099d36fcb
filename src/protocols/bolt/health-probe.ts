/**
 * Active health check for Bolt providers: a heartbeat (cmdcode 0) on a fresh
 * connection, healthy when a heartbeat response with the same request id
 * and status SUCCESS comes back.
 *
 *   request:  01 01 0000 01 <id:4> 01 <timeout:4> 0000 0000 00000000   (22 bytes, Bolt v1)
 *   reply:    01 00 0000 01 <id:4> 01 <status:2> 0000 0000 00000000    (20 bytes)
 */
import type { HealthProbe } from '../../routing/health/probe';
import { probeConnection } from '../../routing/health/probe';
import { BoltCmd, BoltDecoder, BoltType, heartbeatRequest } from './codec';

let nextId = 1;

export const boltHealthProbe: HealthProbe = {
  type: 'bolt',
  description: 'Sends a Bolt heartbeat, expects a heartbeat response with status SUCCESS.',
  check: (target, timeoutMs) =>
    probeConnection(target, timeoutMs, (sock, done) => {
      const id = nextId;
      nextId = nextId >= 0x7fffffff ? 1 : nextId + 1;
      const d = new BoltDecoder(
        {
          onFrame: (f) => {
            if (f.type !== BoltType.Response || f.cmd !== BoltCmd.Heartbeat || f.requestId !== id) done(new Error('unexpected frame in answer to a heartbeat'));
            else done(f.status === 0 ? null : new Error(`heartbeat answered with status ${f.status}`));
          },
          onError: (e) => done(new Error(`not a Bolt answer: ${e.message}`)),
        },
        1 << 20,
      );
      sock.on('data', (c: Buffer) => d.push(c));
      sock.write(heartbeatRequest(id, undefined, timeoutMs));
    }),
};
