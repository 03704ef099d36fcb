/**
 * A real redis-server for differential tests: started on a free loopback
 * port with persistence off, stopped with SIGKILL. When the binary is
 * missing it is installed from Debian (package redis-server) if we run as
 * root; otherwise the test fails naming the package. Tests never skip.
 *
 * RawRedisClient speaks RESP over a plain socket and hands back each reply
 * as the exact bytes the server sent, framed with Portway's own reply
 * decoder, so tests compare wire bytes.
 */
import { connect, type Socket } from 'node:net';
import { RespReplyDecoder } from '../../src/protocols/redis/reply-decoder';
import { encodeCommand } from '../../src/protocols/redis/resp-writer';
import { ensureRedisServer, startRedis } from './redis';

/** The redis-server binary; installs the Debian package when root and it is missing. */
export function redisServerBinary(): string {
  return ensureRedisServer();
}

export interface RedisServerProcess {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no` (startRedis) and waits until it answers. */
export async function startRedisServer(): Promise<RedisServerProcess> {
  const server = await startRedis();
  return { port: server.port, stop: () => server.close() };
}

/** One connection; replies come back as raw bytes, in request order. */
export class RawRedisClient {
  private readonly waiting: Array<(reply: Buffer) => void> = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    const decoder = new RespReplyDecoder({
      onReply: (buf, start, end) => {
        const w = this.waiting.shift();
        if (w) w(Buffer.from(buf.subarray(start, end)));
      },
      onError: (err) => socket.destroy(err),
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
    socket.on('error', (e) => (this.failure = e));
  }

  static connect(port: number): Promise<RawRedisClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' });
      s.setNoDelay(true);
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(new RawRedisClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Sends one command; resolves with the reply's exact bytes. */
  send(args: ReadonlyArray<string | Buffer>): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
