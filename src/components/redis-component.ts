/**
 * The 'redis' capability: a component that executes RESP commands itself.
 * The session hands it one decoded command at a time and a writer to append
 * exactly one reply to; execution is synchronous (the component is in
 * process), so ordering with other replies is trivial.
 */
import type { RespCommand } from '../protocols/redis/request-decoder';
import type { RespWriter, RespProtocolVersion } from '../protocols/redis/resp-writer';
import type { Component } from './component';

export interface RedisCommandContext {
  /** The protocol the client negotiated (HELLO): replies must use it. */
  readonly resp: RespProtocolVersion;
  /** The database the client SELECTed. */
  readonly db: number;
}

export interface RedisComponent extends Component {
  readonly capability: 'redis';
  /** Appends exactly one reply for `cmd` to `out`. Never throws for bad input: that is an -ERR reply. */
  execute(cmd: RespCommand, out: RespWriter, ctx: RedisCommandContext): void;
}

export function isRedisComponent(c: Component | null | undefined): c is RedisComponent {
  return c != null && c.capability === 'redis';
}
