/**
 * L4 TCP proxy: each client connection is routed once (client address,
 * destination), connected to an endpoint picked by the cluster's balancer
 * (connect timeout, failover to another endpoint), then bytes are piped both
 * ways with backpressure and half-close preserved.
 */
import type { Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Exchange } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import type { Invoke, Verdict } from '../../filter';
import { connectCluster, type UpstreamConnection } from '../../routing/connect';
import type { ConnectionHandler, ProtocolBuildContext, ProtocolModule } from '../protocol';

const TcpOptions = Type.Object({}, { additionalProperties: false, description: 'The tcp protocol has no options yet.' });

class TcpHandler implements ConnectionHandler {
  private readonly invoke: Invoke<UpstreamConnection>;

  constructor(private readonly ctx: ProtocolBuildContext) {
    this.invoke = ctx.chain.compose<UpstreamConnection>((ex) => {
      if (ex.cluster === null) return Promise.reject(new ProxyError(ErrorCode.NoRoute, 'no cluster chosen', { source: 'internal' }));
      return connectCluster(ex.cluster, ex.deadline);
    });
  }

  handle(client: Socket): void {
    const { listener, chain } = this.ctx;
    client.setNoDelay(true);
    const ex = new Exchange(listener.name, 'tcp', client.remoteAddress ?? '', client.remotePort ?? 0);
    ex.attrs['destination'] = `${client.localAddress}:${client.localPort}`;
    // Errors before the upstream exists (a reset while connecting) must not crash the process.
    const earlyError = () => client.destroy();
    client.on('error', earlyError);
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = chain.runRequest(ex);
    } catch (err) {
      this.fail(client, ex, toProxyError(err));
      return;
    }
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.route(client, ex, v, earlyError),
        (err) => this.fail(client, ex, toProxyError(err)),
      );
    } else this.route(client, ex, verdict, earlyError);
  }

  private route(client: Socket, ex: Exchange, verdict: Verdict, earlyError: () => void): void {
    if (verdict !== undefined) {
      this.fail(client, ex, verdict.error);
      return;
    }
    this.invoke(ex).then(
      (up) => {
        client.removeListener('error', earlyError);
        this.splice(client, up, ex);
      },
      (err) => this.fail(client, ex, toProxyError(err)),
    );
  }

  /** No upstream: close the client at once (never leave it hanging) and count why. */
  private fail(client: Socket, ex: Exchange, err: ProxyError): void {
    ex.error = err;
    this.ctx.stats.countError(err.code);
    client.destroy();
    ex.info['bytes_in'] = client.bytesRead;
    ex.info['bytes_out'] = 0;
    this.ctx.chain.complete(ex);
  }

  private splice(client: Socket, conn: UpstreamConnection, ex: Exchange): void {
    const up = conn.socket;
    const { stats, listener } = this.ctx;
    ex.endpoint = conn.endpoint;
    conn.endpoint.rqTotal.inc();
    if (client.destroyed) {
      // The client left while we were connecting: its close already happened.
      up.destroy();
      conn.release();
      this.fail(client, ex, new ProxyError(ErrorCode.UpstreamReset, 'client closed before the upstream connected', { source: 'downstream' }));
      return;
    }
    conn.endpoint.rqActive++;
    let open = 2;
    let failed = false;
    const onClose = () => {
      if (--open > 0) return;
      conn.release();
      conn.endpoint.rqActive--;
      ex.info['bytes_in'] = client.bytesRead;
      ex.info['bytes_out'] = client.bytesWritten;
      stats.bytesIn.inc(client.bytesRead);
      stats.bytesOut.inc(client.bytesWritten);
      if (failed) conn.endpoint.rqError.inc();
      this.ctx.chain.complete(ex);
    };
    const onError = (side: 'downstream' | 'upstream') => (err: NodeJS.ErrnoException) => {
      if (!failed) {
        failed = true;
        ex.error = new ProxyError(side === 'upstream' ? ErrorCode.UpstreamReset : ErrorCode.Internal, `${side} connection error: ${err.code ?? err.message}`, {
          source: side,
          cause: err,
        });
        stats.countError(ex.error.code);
      }
      client.destroy();
      up.destroy();
    };
    client.on('error', onError('downstream'));
    up.on('error', onError('upstream'));
    client.once('close', (hadError) => {
      if (hadError) up.destroy();
      onClose();
    });
    up.once('close', (hadError) => {
      if (hadError) client.destroy();
      onClose();
    });
    if (listener.idleTimeoutMs > 0) {
      const onIdle = () => {
        if (!failed) {
          failed = true;
          ex.error = new ProxyError(ErrorCode.IdleTimeout, `idle for ${listener.idleTimeoutMs} ms`, { source: 'downstream' });
          stats.countError(ex.error.code);
        }
        client.destroy();
        up.destroy();
      };
      // Socket timeouts restart on reads and writes alike, so each side's timer sees traffic in both directions.
      client.setTimeout(listener.idleTimeoutMs, onIdle);
      up.setTimeout(listener.idleTimeoutMs, onIdle);
    }
    // pipe() gives backpressure both ways and propagates a FIN as end() (half-close), since both sockets allow half-open.
    client.pipe(up);
    up.pipe(client);
  }
}

export const tcpProtocol: ProtocolModule = {
  name: 'tcp',
  description: 'Plain TCP (L4): one upstream connection per client connection.',
  optionsSchema: TcpOptions,
  attributes: ['destination'],
  create: (ctx) => new TcpHandler(ctx),
};
