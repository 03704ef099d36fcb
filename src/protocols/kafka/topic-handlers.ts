/**
 * Requests answered from the topic catalogue and the committed offsets:
 * Metadata (with auto-creation), CreateTopics, DeleteTopics, ListOffsets,
 * OffsetCommit, OffsetFetch. Topic names are the client's; the listener maps
 * them to the log component and the name it stores.
 */
import { toProxyError } from '../../errors';
import { KafkaError, kafkaErrorOf } from './error-codes';
import type { TopicPlace } from './listener';
import type { RequestHeader } from './request-header';
import type { Reply, RequestContext } from './session';
import { encodeMetadataResponse, type TopicMetadata } from './apis/metadata';
import { encodeCreateTopicsResponse, encodeDeleteTopicsResponse, type CreateTopicsRequest } from './apis/admin';
import {
  encodeListOffsetsResponse,
  encodeOffsetCommitResponse,
  encodeOffsetFetchResponse,
  type ListOffsetsRequest,
  type ListOffsetsResult,
  type OffsetCommitRequest,
  type OffsetFetchRequest,
  type OffsetFetchResult,
  type PartitionErrors,
} from './apis/offsets';

export async function metadata(ctx: RequestContext, h: RequestHeader, topics: string[] | null, allowAuto: boolean): Promise<Reply> {
  const l = ctx.l;
  const out: TopicMetadata[] = [];
  if (topics === null) {
    for (const log of l.logs()) {
      for (const t of log.topics()) {
        const name = l.appName(log, t.name);
        if (name !== null) out.push({ errorCode: KafkaError.NONE, name, partitions: t.partitions });
      }
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } else {
    for (const name of topics) {
      const p = l.place(name);
      if (p === null) {
        out.push({ errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, name, partitions: 0 });
        continue;
      }
      let info = p.log.topic(p.stored);
      if (info === undefined && allowAuto && l.options.autoCreateTopics) {
        try {
          info = await p.log.createTopic(p.stored, l.options.defaultPartitions);
          l.log.info({ topic: name, stored: p.stored, cluster: p.cluster.name, partitions: info.partitions }, 'topic auto-created');
        } catch (e) {
          const pe = toProxyError(e);
          info = p.log.topic(p.stored);
          if (info === undefined) {
            out.push({ errorCode: kafkaErrorOf(pe), name, partitions: 0 });
            continue;
          }
        }
      }
      if (info === undefined) out.push({ errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, name, partitions: 0 });
      else out.push({ errorCode: KafkaError.NONE, name, partitions: info.partitions });
    }
  }
  const b = ctx.broker();
  const w = ctx.writer(h, 256 + out.length * 64);
  encodeMetadataResponse(w, h.apiVersion, {
    brokers: [{ nodeId: l.options.nodeId, host: b.host, port: b.port }],
    clusterId: l.options.clusterId,
    controllerId: l.options.nodeId,
    topics: out,
  });
  return w.finish();
}

export async function createTopics(ctx: RequestContext, h: RequestHeader, req: CreateTopicsRequest): Promise<Reply> {
  const l = ctx.l;
  const results: { name: string; errorCode: number; message: string | null }[] = [];
  for (const t of req.topics) {
    const p = l.place(t.name);
    const n = t.numPartitions === -1 ? l.options.defaultPartitions : t.numPartitions;
    if (p === null) results.push({ name: t.name, errorCode: KafkaError.INVALID_REQUEST, message: `no route to a log component for topic '${t.name}'` });
    else if (t.assignments > 0) results.push({ name: t.name, errorCode: KafkaError.INVALID_REQUEST, message: 'replica assignments are not supported' });
    else if (n < 1) results.push({ name: t.name, errorCode: KafkaError.INVALID_PARTITIONS, message: `invalid partition count ${n}` });
    else if (p.log.topic(p.stored) !== undefined) results.push({ name: t.name, errorCode: KafkaError.TOPIC_ALREADY_EXISTS, message: `topic '${t.name}' already exists` });
    else if (req.validateOnly) results.push({ name: t.name, errorCode: KafkaError.NONE, message: null });
    else {
      try {
        await p.log.createTopic(p.stored, n);
        l.log.info({ topic: t.name, stored: p.stored, cluster: p.cluster.name, partitions: n }, 'topic created');
        results.push({ name: t.name, errorCode: KafkaError.NONE, message: null });
      } catch (e) {
        const pe = toProxyError(e);
        results.push({ name: t.name, errorCode: kafkaErrorOf(pe), message: pe.message });
      }
    }
  }
  const w = ctx.writer(h, 128);
  encodeCreateTopicsResponse(w, h.apiVersion, results);
  return w.finish();
}

export async function deleteTopics(ctx: RequestContext, h: RequestHeader, topics: string[]): Promise<Reply> {
  const results: { name: string; errorCode: number }[] = [];
  for (const name of topics) {
    const p = ctx.l.place(name);
    if (p === null) {
      results.push({ name, errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION });
      continue;
    }
    try {
      const gone = await p.log.deleteTopic(p.stored);
      results.push({ name, errorCode: gone ? KafkaError.NONE : KafkaError.UNKNOWN_TOPIC_OR_PARTITION });
      if (gone) ctx.l.log.info({ topic: name, stored: p.stored }, 'topic deleted');
    } catch (e) {
      results.push({ name, errorCode: kafkaErrorOf(toProxyError(e)) });
    }
  }
  const w = ctx.writer(h, 128);
  encodeDeleteTopicsResponse(w, h.apiVersion, results);
  return w.finish();
}

export async function listOffsets(ctx: RequestContext, h: RequestHeader, req: ListOffsetsRequest): Promise<Reply> {
  const out: ListOffsetsResult[] = [];
  for (const t of req.topics) {
    const place = ctx.l.place(t.name);
    const res: ListOffsetsResult = { name: t.name, partitions: [] };
    out.push(res);
    for (const p of t.partitions) {
      const log = place === null ? undefined : place.log.partition(place.stored, p.partition);
      if (log === undefined) {
        res.partitions.push({ partition: p.partition, errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, timestamp: -1n, offset: -1n });
        continue;
      }
      if (p.timestamp === -1n) res.partitions.push({ partition: p.partition, errorCode: 0, timestamp: -1n, offset: log.highWatermark() });
      else if (p.timestamp === -2n) res.partitions.push({ partition: p.partition, errorCode: 0, timestamp: -1n, offset: log.logStartOffset() });
      else {
        try {
          const off = await log.offsetForTimestamp(p.timestamp);
          res.partitions.push({ partition: p.partition, errorCode: 0, timestamp: off === null ? -1n : p.timestamp, offset: off ?? -1n });
        } catch (e) {
          res.partitions.push({ partition: p.partition, errorCode: kafkaErrorOf(toProxyError(e)), timestamp: -1n, offset: -1n });
        }
      }
    }
  }
  const w = ctx.writer(h, 128);
  encodeListOffsetsResponse(w, h.apiVersion, out);
  return w.finish();
}

export async function offsetCommit(ctx: RequestContext, h: RequestHeader, req: OffsetCommitRequest): Promise<Reply> {
  const allowed = ctx.l.coordinator.commitAllowed(req.groupId, req.generationId, req.memberId);
  const out: PartitionErrors[] = [];
  const byLog = new Map<TopicPlace['log'], { topic: string; partition: number; offset: bigint; metadata: string | null }[]>();
  const entries = new Map<TopicPlace['log'], { errorCode: number }[]>();
  for (const t of req.topics) {
    const res: PartitionErrors = { name: t.name, partitions: [] };
    out.push(res);
    const place = ctx.l.place(t.name);
    for (const p of t.partitions) {
      const e = { partition: p.partition, errorCode: allowed };
      res.partitions.push(e);
      if (allowed !== KafkaError.NONE) continue;
      if (req.groupId === '') {
        e.errorCode = KafkaError.INVALID_GROUP_ID;
        continue;
      }
      if (place === null || place.log.partition(place.stored, p.partition) === undefined) {
        e.errorCode = KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
        continue;
      }
      let list = byLog.get(place.log);
      if (list === undefined) {
        list = [];
        byLog.set(place.log, list);
        entries.set(place.log, []);
      }
      list.push({ topic: place.stored, partition: p.partition, offset: p.offset, metadata: p.metadata });
      entries.get(place.log)!.push(e);
    }
  }
  await Promise.all(
    [...byLog].map(([log, list]) =>
      log.commitOffsets(req.groupId, list).catch((e) => {
        const code = kafkaErrorOf(toProxyError(e));
        for (const x of entries.get(log)!) x.errorCode = code;
      }),
    ),
  );
  const w = ctx.writer(h, 128);
  encodeOffsetCommitResponse(w, h.apiVersion, out);
  return w.finish();
}

export function offsetFetch(ctx: RequestContext, h: RequestHeader, req: OffsetFetchRequest): Reply {
  const l = ctx.l;
  const out: OffsetFetchResult[] = [];
  if (req.topics === null) {
    for (const log of l.logs()) {
      for (const t of log.topics()) {
        const name = l.appName(log, t.name);
        if (name === null) continue;
        const res: OffsetFetchResult = { name, partitions: [] };
        for (let p = 0; p < t.partitions; p++) {
          const c = log.fetchOffset(req.groupId, t.name, p);
          if (c !== undefined) res.partitions.push({ partition: p, offset: c.offset, metadata: c.metadata ?? '', errorCode: 0 });
        }
        if (res.partitions.length > 0) out.push(res);
      }
    }
  } else {
    for (const t of req.topics) {
      const place = l.place(t.name);
      const res: OffsetFetchResult = { name: t.name, partitions: [] };
      out.push(res);
      for (const p of t.partitions) {
        const c = place === null ? undefined : place.log.fetchOffset(req.groupId, place.stored, p);
        res.partitions.push({ partition: p, offset: c?.offset ?? -1n, metadata: c === undefined ? '' : (c.metadata ?? ''), errorCode: 0 });
      }
    }
  }
  const w = ctx.writer(h, 128);
  encodeOffsetFetchResponse(w, h.apiVersion, out, KafkaError.NONE);
  return w.finish();
}
