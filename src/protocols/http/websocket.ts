/**
 * Upgraded connections (WebSocket, or any protocol switched with a 101):
 * once the upstream answered 101 to the forwarded upgrade request, the
 * client gets the 101 head and the two sockets are spliced. Frames are not
 * parsed: bytes move both ways with backpressure (pipe), a FIN on one side
 * half-closes the other, an error or the listener's idle_timeout closes both.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Writes a response head (status line + flat header list) on a raw socket. */
export function writeRawHead(socket: Socket, status: number, statusText: string, headers: readonly string[], close = true): void {
  let head = `HTTP/1.1 ${status} ${statusText || STATUS_CODES[status] || ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  if (close) head += 'connection: close\r\n';
  socket.write(`${head}\r\n`, 'latin1');
}

export function spliceUpgrade(client: Socket, head: Buffer | null, upstream: Duplex, headers: readonly string[], statusText: string, idleTimeoutMs: number): void {
  const up = upstream as Socket;
  let dead = false;
  const kill = () => {
    if (dead) return;
    dead = true;
    client.destroy();
    up.destroy();
  };
  client.on('error', kill);
  up.on('error', kill);
  client.once('close', () => {
    if (!up.writableEnded) up.destroy();
  });
  up.once('close', () => {
    if (!client.writableEnded) client.destroy();
  });
  if (client.destroyed) {
    kill();
    return;
  }
  writeRawHead(client, 101, statusText || 'Switching Protocols', headers, false);
  if (head !== null && head.length > 0) up.write(head);
  client.pipe(up);
  up.pipe(client);
  if (idleTimeoutMs > 0) {
    client.setTimeout(idleTimeoutMs, kill);
    if (typeof up.setTimeout === 'function') up.setTimeout(idleTimeoutMs, kill);
  }
  up.resume();
}
