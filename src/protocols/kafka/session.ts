/**
 * One client connection of the Kafka listener.
 *
 * Frames are decoded as they arrive; each request that expects an answer
 * gets a Slot in the session's FIFO, so responses go back in request order
 * whichever finishes first (Kafka clients match them by correlation id but
 * rely on the order). acks=0 produce requests get no slot and no response.
 * Produce requests of one connection are appended in the order they came.
 */
import type { Socket } from 'node:net';
import { ErrorCode, toProxyError } from '../../errors';
import { KafkaFrameDecoder, type FrameSink } from './frame-decoder';
import { KafkaDecodeError, KafkaReader } from './reader';
import { KafkaWriter } from './writer';
import { ApiKey, isSupported } from './api-keys';
import { readHeaderRest, readHeaderStart, type RequestHeader } from './request-header';
import { KafkaError } from './error-codes';
import type { KafkaListener } from './listener';
import { ProducePath } from './produce-path';
import { serveFetch } from './fetch-path';
import { createTopics, deleteTopics, listOffsets, metadata, offsetCommit, offsetFetch } from './topic-handlers';
import { decodeApiVersionsRequest, encodeApiVersionsResponse } from './apis/api-versions';
import { decodeMetadataRequest, encodeMetadataResponse } from './apis/metadata';
import { decodeProduceRequest, encodeProduceResponse } from './apis/produce';
import { decodeFetchRequest, encodeFetchResponse } from './apis/fetch';
import {
  decodeListOffsetsRequest,
  decodeOffsetCommitRequest,
  decodeOffsetFetchRequest,
  encodeListOffsetsResponse,
  encodeOffsetCommitResponse,
  encodeOffsetFetchResponse,
} from './apis/offsets';
import {
  decodeDescribeGroupsRequest,
  decodeFindCoordinatorRequest,
  decodeHeartbeatRequest,
  decodeJoinGroupRequest,
  decodeLeaveGroupRequest,
  decodeSyncGroupRequest,
  encodeDescribeGroupsResponse,
  encodeErrorOnlyResponse,
  encodeFindCoordinatorResponse,
  encodeJoinGroupResponse,
  encodeLeaveGroupResponse,
  encodeListGroupsResponse,
  encodeSyncGroupResponse,
  type JoinGroupResponse,
} from './apis/groups';
import {
  decodeCreateTopicsRequest,
  decodeDeleteTopicsRequest,
  decodeInitProducerIdRequest,
  encodeCreateTopicsResponse,
  encodeDeleteTopicsResponse,
  encodeInitProducerIdResponse,
} from './apis/admin';

/** Requests without their response written yet before the socket stops being read. */
const MAX_PENDING = 256;
const RESUME_PENDING = 64;

/** One encoded response frame (one or more buffers, written in order). */
export type Reply = Buffer[];

/** What the request handlers (produce-path, fetch-path, topic-handlers) use of a session. */
export interface RequestContext {
  readonly l: KafkaListener;
  readonly socket: Socket;
  /** A writer with the response header of `h` written. */
  writer(h: RequestHeader, size?: number): KafkaWriter;
  /** The broker address this connection is told about. */
  broker(): { host: string; port: number };
}

class Slot {
  next: Slot | null = null;
  data: Reply | null = null;
}

function isThenable<T>(v: unknown): v is Promise<T> {
  return v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';
}

export class KafkaSession implements FrameSink, RequestContext {
  private readonly decoder: KafkaFrameDecoder;
  private head: Slot | null = null;
  private tail: Slot | null = null;
  private pending = 0;
  private writeBlocked = false;
  private closing = false;
  private readonly producer = new ProducePath(this);
  private advertised: { host: string; port: number } | null = null;

  constructor(
    readonly socket: Socket,
    readonly l: KafkaListener,
  ) {
    this.decoder = new KafkaFrameDecoder(this, l.options.maxFrameSize);
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => {
      this.closing = true;
      if (this.head === null) socket.end();
    });
    if (l.idleTimeoutMs > 0) {
      socket.setTimeout(l.idleTimeoutMs, () => {
        l.stats.countError(ErrorCode.IdleTimeout);
        socket.destroy();
      });
    }
  }

  // --- framing and ordering ------------------------------------------------

  onFrameError(reason: string): void {
    this.l.log.warn({ client: `${this.socket.remoteAddress}:${this.socket.remotePort}`, reason }, 'kafka connection closed: bad request frame');
    this.l.stats.countError(ErrorCode.Protocol);
    this.decoder.fail();
    this.socket.destroy();
  }

  onFrame(frame: Buffer): void {
    const r = new KafkaReader(frame);
    const h = readHeaderStart(r);
    if (!isSupported(h.apiKey, h.apiVersion)) return this.unsupported(h);
    this.l.requests[h.apiKey]!.value++;
    let slot: Slot | null = null;
    try {
      readHeaderRest(r, h);
      if (h.apiKey === ApiKey.Produce) {
        const req = decodeProduceRequest(r, h.apiVersion);
        if (req.acks === 0) {
          const out = this.producer.produce(h, req);
          if (isThenable(out)) out.catch((e) => this.l.log.error({ err: e }, 'kafka acks=0 produce failed inside Portway'));
          return;
        }
        slot = this.newSlot();
        return this.settle(slot, h, this.producer.produce(h, req));
      }
      slot = this.newSlot();
      this.settle(slot, h, this.dispatch(h, r));
    } catch (e) {
      if (!(e instanceof KafkaDecodeError)) {
        this.l.log.error({ err: e, api: h.apiKey, version: h.apiVersion }, 'kafka request failed inside Portway');
      } else {
        this.l.log.debug({ api: h.apiKey, version: h.apiVersion, reason: e.message }, 'kafka request could not be decoded');
      }
      this.l.stats.countError(ErrorCode.Protocol);
      const code = e instanceof KafkaDecodeError ? KafkaError.INVALID_REQUEST : KafkaError.UNKNOWN_SERVER_ERROR;
      this.fill(slot ?? this.newSlot(), this.errorResponse(h, code));
    }
  }

  /** An API or version this broker does not parse: UNSUPPORTED_VERSION, and the connection carries on. */
  private unsupported(h: RequestHeader): void {
    this.l.unsupported.value++;
    const w = new KafkaWriter(64).header(h.correlationId, false);
    // ApiVersions is answered in its v0 form so the client can read our ranges and fall back.
    if (h.apiKey === ApiKey.ApiVersions) encodeApiVersionsResponse(w, 0, KafkaError.UNSUPPORTED_VERSION);
    else w.int16(KafkaError.UNSUPPORTED_VERSION);
    this.l.log.debug({ api: h.apiKey, version: h.apiVersion }, 'unsupported kafka API or version');
    this.fill(this.newSlot(), w.finish());
  }

  private settle(slot: Slot, h: RequestHeader, out: Reply | Promise<Reply>): void {
    if (!isThenable<Reply>(out)) return this.fill(slot, out);
    out.then(
      (reply) => this.fill(slot, reply),
      (e) => {
        this.l.log.error({ err: e, api: h.apiKey, version: h.apiVersion }, 'kafka request failed inside Portway');
        this.l.stats.countError(toProxyError(e).code);
        this.fill(slot, this.errorResponse(h, KafkaError.UNKNOWN_SERVER_ERROR));
      },
    );
  }

  private newSlot(): Slot {
    const s = new Slot();
    if (++this.pending === MAX_PENDING) this.socket.pause();
    if (this.tail === null) this.head = this.tail = s;
    else {
      this.tail.next = s;
      this.tail = s;
    }
    return s;
  }

  private fill(slot: Slot, data: Reply): void {
    slot.data = data;
    if (slot !== this.head) return;
    const sock = this.socket;
    if (sock.destroyed) return;
    sock.cork();
    let s: Slot | null = slot;
    let ok = true;
    while (s !== null && s.data !== null) {
      const d = s.data;
      for (let i = 0; i < d.length; i++) ok = sock.write(d[i]!);
      s = s.next;
      if (--this.pending === RESUME_PENDING && !this.closing && !this.writeBlocked) sock.resume();
    }
    this.head = s;
    if (s === null) this.tail = null;
    process.nextTick(uncork, sock);
    if (!ok && !this.writeBlocked) {
      this.writeBlocked = true;
      sock.pause();
      sock.once('drain', () => {
        this.writeBlocked = false;
        if (!this.closing && this.pending < MAX_PENDING) sock.resume();
      });
    }
    if (this.closing && this.head === null) sock.end();
  }

  writer(h: RequestHeader, size = 256): KafkaWriter {
    const w = new KafkaWriter(size).header(h.correlationId, h.flexible && h.apiKey !== ApiKey.ApiVersions);
    w.flex = h.flexible;
    return w;
  }

  broker(): { host: string; port: number } {
    if (this.advertised !== null) return this.advertised;
    const o = this.l.options;
    let host = o.advertisedHost ?? this.socket.localAddress ?? '127.0.0.1';
    if (host.startsWith('::ffff:')) host = host.slice(7);
    this.advertised = { host, port: o.advertisedPort ?? this.socket.localPort ?? 9092 };
    return this.advertised;
  }

  // --- dispatch ------------------------------------------------------------

  private dispatch(h: RequestHeader, r: KafkaReader): Reply | Promise<Reply> {
    if (!this.l.isReady && h.apiKey !== ApiKey.ApiVersions) {
      // Configured topics are still being created: decode now (the frame is not kept), answer after.
      const run = this.decodeAndRun(h, r);
      return this.l.ready.then(run);
    }
    return this.decodeAndRun(h, r)();
  }

  private decodeAndRun(h: RequestHeader, r: KafkaReader): () => Reply | Promise<Reply> {
    const v = h.apiVersion;
    switch (h.apiKey) {
      case ApiKey.ApiVersions: {
        decodeApiVersionsRequest(r, v);
        return () => {
          const w = this.writer(h, 512);
          encodeApiVersionsResponse(w, v, KafkaError.NONE);
          return w.finish();
        };
      }
      case ApiKey.Metadata: {
        const req = decodeMetadataRequest(r, v);
        return () => metadata(this, h, req.topics, req.allowAutoTopicCreation);
      }
      case ApiKey.Fetch: {
        const req = decodeFetchRequest(r, v);
        return () => serveFetch(this, h, req);
      }
      case ApiKey.ListOffsets: {
        const req = decodeListOffsetsRequest(r, v);
        return () => listOffsets(this, h, req);
      }
      case ApiKey.OffsetCommit: {
        const req = decodeOffsetCommitRequest(r, v);
        return () => offsetCommit(this, h, req);
      }
      case ApiKey.OffsetFetch: {
        const req = decodeOffsetFetchRequest(r, v);
        return () => offsetFetch(this, h, req);
      }
      case ApiKey.FindCoordinator: {
        decodeFindCoordinatorRequest(r, v);
        return () => {
          const w = this.writer(h, 64);
          const b = this.broker();
          encodeFindCoordinatorResponse(w, v, KafkaError.NONE, this.l.options.nodeId, b.host, b.port);
          return w.finish();
        };
      }
      case ApiKey.JoinGroup: {
        const req = decodeJoinGroupRequest(r, v);
        return () => {
          const out = this.l.coordinator.join(req, v, h.clientId, this.socket.remoteAddress ?? '');
          const enc = (j: JoinGroupResponse): Reply => {
            const w = this.writer(h, 256);
            encodeJoinGroupResponse(w, v, j);
            return w.finish();
          };
          return isThenable<JoinGroupResponse>(out) ? out.then(enc) : enc(out);
        };
      }
      case ApiKey.SyncGroup: {
        const req = decodeSyncGroupRequest(r, v);
        return () => {
          const out = this.l.coordinator.sync(req.groupId, req.generationId, req.memberId, req.assignments);
          const enc = (s: { errorCode: number; assignment: Buffer }): Reply => {
            const w = this.writer(h, 128);
            encodeSyncGroupResponse(w, v, s.errorCode, s.assignment);
            return w.finish();
          };
          return isThenable<{ errorCode: number; assignment: Buffer }>(out) ? out.then(enc) : enc(out);
        };
      }
      case ApiKey.Heartbeat: {
        const req = decodeHeartbeatRequest(r, v);
        return () => {
          const w = this.writer(h, 32);
          encodeErrorOnlyResponse(w, v, this.l.coordinator.heartbeat(req.groupId, req.generationId, req.memberId));
          return w.finish();
        };
      }
      case ApiKey.LeaveGroup: {
        const req = decodeLeaveGroupRequest(r, v);
        return () => {
          const res = this.l.coordinator.leave(
            req.groupId,
            req.members.map((m) => m.memberId),
          );
          const w = this.writer(h, 64);
          encodeLeaveGroupResponse(
            w,
            v,
            v >= 3 ? KafkaError.NONE : res.topError,
            req.members.map((m, i) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: res.errors[i]! })),
          );
          return w.finish();
        };
      }
      case ApiKey.DescribeGroups: {
        const req = decodeDescribeGroupsRequest(r, v);
        return () => {
          const w = this.writer(h, 256);
          encodeDescribeGroupsResponse(
            w,
            v,
            req.groups.map((g) => {
              const d = this.l.coordinator.describe(g);
              // A group known only by its committed offsets is Empty, not Dead.
              if (d.state === 'Dead' && this.l.logs().some((log) => log.groups().includes(g))) d.state = 'Empty';
              return d;
            }),
          );
          return w.finish();
        };
      }
      case ApiKey.ListGroups: {
        return () => {
          const seen = new Map<string, string>();
          for (const g of this.l.coordinator.list()) seen.set(g.groupId, g.protocolType);
          for (const log of this.l.logs()) for (const g of log.groups()) if (!seen.has(g)) seen.set(g, 'consumer');
          const w = this.writer(h, 256);
          encodeListGroupsResponse(
            w,
            v,
            [...seen].map(([groupId, protocolType]) => ({ groupId, protocolType })),
          );
          return w.finish();
        };
      }
      case ApiKey.CreateTopics: {
        const req = decodeCreateTopicsRequest(r, v);
        return () => createTopics(this, h, req);
      }
      case ApiKey.DeleteTopics: {
        const req = decodeDeleteTopicsRequest(r, v);
        return () => deleteTopics(this, h, req.topics);
      }
      case ApiKey.InitProducerId: {
        const req = decodeInitProducerIdRequest(r, v);
        return () => {
          const w = this.writer(h, 64);
          // Transactions are not kept: a transactional producer is refused; idempotent ones get an id.
          if (req.transactionalId !== null) encodeInitProducerIdResponse(w, v, KafkaError.INVALID_REQUEST, -1n, -1);
          else encodeInitProducerIdResponse(w, v, KafkaError.NONE, this.l.newProducerId(), 0);
          return w.finish();
        };
      }
      default:
        throw new KafkaDecodeError(`api ${h.apiKey} has no handler`);
    }
  }

  /**
   * A well-formed response of the request's API and version carrying `code`
   * where the API has a top-level error, and no entries otherwise.
   */
  private errorResponse(h: RequestHeader, code: number): Reply {
    const w = this.writer(h, 64);
    const v = h.apiVersion;
    switch (h.apiKey) {
      case ApiKey.Produce:
        encodeProduceResponse(w, v, [], 0);
        break;
      case ApiKey.Fetch:
        encodeFetchResponse(w, v, [], 0, code);
        break;
      case ApiKey.ListOffsets:
        encodeListOffsetsResponse(w, v, []);
        break;
      case ApiKey.Metadata:
        encodeMetadataResponse(w, v, { brokers: [], clusterId: this.l.options.clusterId, controllerId: -1, topics: [] });
        break;
      case ApiKey.OffsetCommit:
        encodeOffsetCommitResponse(w, v, []);
        break;
      case ApiKey.OffsetFetch:
        encodeOffsetFetchResponse(w, v, [], code);
        break;
      case ApiKey.FindCoordinator:
        encodeFindCoordinatorResponse(w, v, code, -1, '', -1);
        break;
      case ApiKey.JoinGroup:
        encodeJoinGroupResponse(w, v, { errorCode: code, generationId: -1, protocolName: '', leader: '', memberId: '', members: [] });
        break;
      case ApiKey.SyncGroup:
        encodeSyncGroupResponse(w, v, code, Buffer.alloc(0));
        break;
      case ApiKey.Heartbeat:
        encodeErrorOnlyResponse(w, v, code);
        break;
      case ApiKey.LeaveGroup:
        encodeLeaveGroupResponse(w, v, code, []);
        break;
      case ApiKey.DescribeGroups:
        encodeDescribeGroupsResponse(w, v, []);
        break;
      case ApiKey.ListGroups:
        if (v >= 1) w.int32(0);
        w.int16(code).arrayLength(0);
        break;
      case ApiKey.ApiVersions:
        encodeApiVersionsResponse(w, v, code);
        break;
      case ApiKey.CreateTopics:
        encodeCreateTopicsResponse(w, v, []);
        break;
      case ApiKey.DeleteTopics:
        encodeDeleteTopicsResponse(w, v, []);
        break;
      case ApiKey.InitProducerId:
        encodeInitProducerIdResponse(w, v, code, -1n, -1);
        break;
      default:
        w.int16(code);
    }
    return w.finish();
  }
}

function uncork(s: Socket): void {
  s.uncork();
}

