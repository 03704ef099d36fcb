/**
 * L4 TCP proxy: each client connection is routed once (client address,
 * destination), connected to an endpoint picked by the cluster's balancer
 * (connect timeout, failover to another endpoint), then bytes move both ways
 * through two Pumps (reused read buffers, backpressure, half-close kept).
 */
import type { Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Exchange } from '../../exchange';
import { ErrorCode, ProxyError, toProxyError } from '../../errors';
import type { Invoke, Verdict } from '../../filter';
import { connectCluster, type UpstreamConnection } from '../../routing/connect';
import type { ConnectionHandler, ProtocolBuildContext, ProtocolModule } from '../protocol';
import { Pump, adoptWithUserBuffer } from './pump';

const TcpOptions = Type.Object({}, { additionalProperties: false, description: 'The tcp protocol has no options yet.' });

/** One client connection: the exchange plus the two directions. */
class TcpExchange extends Exchange {
  /** client -> upstream; reads the client socket. */
  readonly up = new Pump();
  /** upstream -> client; reads the upstream socket (handed to connect). */
  readonly down = new Pump();
}

class TcpHandler implements ConnectionHandler {
  private readonly invoke: Invoke<UpstreamConnection>;

  private readonly needsDestination: boolean;

  constructor(private readonly ctx: ProtocolBuildContext) {
    this.needsDestination = ctx.listener.routes.some((r) => 'destination' in r.attributes);
    this.invoke = ctx.chain.compose<UpstreamConnection>((ex) => {
      if (ex.cluster === null) return Promise.reject(new ProxyError(ErrorCode.NoRoute, 'no cluster chosen', { source: 'internal' }));
      return connectCluster(ex.cluster, ex.deadline, (ex as TcpExchange).down.onread);
    });
  }

  handle(accepted: Socket): Socket {
    const { listener, chain } = this.ctx;
    const ex = new TcpExchange(listener.name, 'tcp', accepted.remoteAddress ?? '', accepted.remotePort ?? 0);
    // getsockname is a syscall: only when a route looks at the destination.
    if (this.needsDestination) ex.attrs['destination'] = `${accepted.localAddress}:${accepted.localPort}`;
    const client = adoptWithUserBuffer(accepted, ex.up.onread);
    if (client === null) {
      // The pump needs the socket's handle; without it nothing can be served safely.
      this.fail(accepted, ex, new ProxyError(ErrorCode.Internal, 'accepted socket has no usable handle'));
      return accepted;
    }
    ex.up.src = client;
    ex.down.dst = client;
    // Errors before the upstream exists (a reset while connecting) must not crash the process.
    const earlyError = () => client.destroy();
    client.on('error', earlyError);
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = chain.runRequest(ex);
    } catch (err) {
      this.fail(client, ex, toProxyError(err));
      return client;
    }
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.route(client, ex, v, earlyError),
        (err) => this.fail(client, ex, toProxyError(err)),
      );
    } else this.route(client, ex, verdict, earlyError);
    return client;
  }

  private route(client: Socket, ex: TcpExchange, verdict: Verdict, earlyError: () => void): void {
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

  private splice(client: Socket, conn: UpstreamConnection, ex: TcpExchange): void {
    const up = conn.socket;
    const { stats, listener } = this.ctx;
    ex.endpoint = conn.endpoint;
    conn.endpoint.rqTotal.inc();
    if (client.destroyed) {
      // The client left while we were connecting: its close already happened.
      up.destroy();
      conn.release();
      this.fail(client, ex, new ProxyError(ErrorCode.DownstreamClosed, 'client closed before the upstream connected', { source: 'downstream' }));
      return;
    }
    conn.endpoint.rqActive++;
    ex.up.dst = up;
    ex.down.src = up;
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
      const upstreamFault = failed && ex.error?.source === 'upstream';
      if (upstreamFault) conn.endpoint.rqError.inc();
      ex.cluster?.reportResult(conn.endpoint, !upstreamFault);
      this.ctx.chain.complete(ex);
    };
    const fail = (err: ProxyError) => {
      if (!failed) {
        failed = true;
        ex.error = err;
        stats.countError(err.code);
      }
      client.destroy();
      up.destroy();
    };
    client.on('error', (err: NodeJS.ErrnoException) => {
      // A client that resets or goes away is an ordinary abort, not a proxy fault.
      fail(new ProxyError(ErrorCode.DownstreamClosed, `client connection error: ${err.code ?? err.message}`, { source: 'downstream', cause: err }));
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      fail(new ProxyError(ErrorCode.UpstreamReset, `upstream connection error: ${err.code ?? err.message}`, { source: 'upstream', cause: err }));
    });
    // Half-close: a FIN from one side becomes a FIN to the other; the reverse direction stays open.
    client.on('end', () => up.end());
    up.on('end', () => client.end());
    client.once('close', (hadError) => {
      if (hadError) up.destroy();
      onClose();
    });
    up.once('close', (hadError) => {
      if (hadError) client.destroy();
      onClose();
    });
    if (listener.idleTimeoutMs > 0) {
      const onIdle = () => fail(new ProxyError(ErrorCode.IdleTimeout, `idle for ${listener.idleTimeoutMs} ms`, { source: 'downstream' }));
      // Socket timeouts restart on reads and writes alike, so each side's timer sees traffic in both directions.
      client.setTimeout(listener.idleTimeoutMs, onIdle);
      up.setTimeout(listener.idleTimeoutMs, onIdle);
    }
    // The upstream side already reads (it was connected with the pump's buffer); start the client side.
    client.resume();
    up.resume();
  }
}

export const tcpProtocol: ProtocolModule = {
  name: 'tcp',
  description: 'Plain TCP (L4): one upstream connection per client connection.',
  optionsSchema: TcpOptions,
  attributes: ['destination'],
  create: (ctx) => new TcpHandler(ctx),
};
