/**
 * The XML-RPC protocol: an HTTP/1.1 listener whose POST bodies are XML-RPC
 * calls, routed by method name to XML-RPC servers (passthrough), JSON over
 * HTTP or gRPC services (translation). gateway.ts has the request logic;
 * `createXmlRpcHandler` gives an HTTP listener the same logic for a path.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionHandler, ProtocolBuildContext, ProtocolModule } from '../protocol';
import { gatewayContext, XmlRpcGateway } from './gateway';
import { checkOptions, loadProblem, normalizeOptions, XmlRpcOptionsSchema } from './options';

/** The default address of an xmlrpc listener (8080 is the HTTP listener's; XML-RPC moves onto it as a path later). */
export const XMLRPC_DEFAULT_ADDRESS = '127.0.0.1:8081';

class XmlRpcListener implements ConnectionHandler {
  private readonly server: Server;

  constructor(
    readonly gateway: XmlRpcGateway,
    idleTimeoutMs: number,
  ) {
    // Never listens itself: the Portway listener accepts and hands sockets over.
    this.server = createServer({ maxHeaderSize: 16384 }, (req, res) => gateway.handle(req, res));
    this.server.keepAliveTimeout = idleTimeoutMs > 0 ? Math.min(idleTimeoutMs, 60_000) : 60_000;
    if (idleTimeoutMs > 0) this.server.timeout = idleTimeoutMs;
    // Never bound, so 'listening' never comes by itself: it starts Node's connection tracking
    // (headers and request timeouts, closeIdleConnections on retire). Its timer is unref'd.
    this.server.emit('listening');
    this.server.on('clientError', (_err, socket: Socket) => {
      // Malformed HTTP: 400, then close (Node's own default, made explicit and quiet).
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  handle(socket: Socket): void {
    socket.setNoDelay(true);
    this.server.emit('connection', socket);
  }

  retire(): void {
    this.gateway.retire();
    // Idle keep-alive clients reconnect and reach the new generation; busy ones are told `connection: close` with their reply.
    this.server.closeIdleConnections();
    this.server.close(() => undefined);
  }
}

export const xmlrpcProtocol: ProtocolModule = {
  name: 'xmlrpc',
  description: 'XML-RPC over HTTP/1.1: routes calls by method name to XML-RPC servers (passthrough), JSON over HTTP or gRPC (translation).',
  optionsSchema: XmlRpcOptionsSchema,
  attributes: ['method', 'service'],
  check(options, ctx) {
    return checkOptions(options, ctx.clusters, loadProblem);
  },
  create(ctx) {
    const gw = new XmlRpcGateway(gatewayContext(ctx), normalizeOptions(ctx.listener.options));
    return new XmlRpcListener(gw, ctx.listener.idleTimeoutMs);
  },
};

/**
 * For an HTTP listener that serves XML-RPC on a path: build once per config
 * generation with that listener's build context and the xmlrpc options
 * (already validated against XmlRpcOptionsSchema), then call `handle` for
 * each request of the path; `retire` when the generation is replaced.
 */
export function createXmlRpcHandler(
  ctx: ProtocolBuildContext,
  options: Record<string, unknown>,
): { handle(req: IncomingMessage, res: ServerResponse, ctx?: unknown): void; retire(): void; close(): Promise<void> } {
  const gw = new XmlRpcGateway(gatewayContext(ctx), normalizeOptions(options));
  return { handle: (req, res) => gw.handle(req, res), retire: () => gw.retire(), close: () => gw.close() };
}

export { XmlRpcOptionsSchema };
export { xmlrpcHttpHandler } from './http-handler';
