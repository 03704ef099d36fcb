/** Pieces both log components share: topic names, config fields, group offsets in memory. */
import { Type } from '@sinclair/typebox';
import { Duration } from '../../config/schema';
import { ErrorCode, ProxyError } from '../../errors';
import type { CommittedOffset } from '../log-component';

/** Kafka's legal topic names; also safe as a directory name. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

export function checkTopicName(name: string): void {
  if (!TOPIC_NAME.test(name) || name === '.' || name === '..') {
    throw new ProxyError(ErrorCode.InvalidTopic, `invalid topic name '${name.slice(0, 300)}': 1 to 249 of [A-Za-z0-9._-], not '.' or '..'`, { source: 'downstream' });
  }
}

export function checkPartitionCount(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new ProxyError(ErrorCode.Protocol, `invalid partition count ${n} (1 to 10000)`, { source: 'downstream' });
  }
}

export function topicExists(name: string): ProxyError {
  return new ProxyError(ErrorCode.TopicExists, `topic '${name}' already exists`, { source: 'downstream' });
}

export const TopicsOption = Type.Optional(
  Type.Record(Type.String(), Type.Integer({ minimum: 1, maximum: 10000 }), {
    propertyNames: { pattern: '^[A-Za-z0-9._-]{1,249}$' },
    description: 'Topics created at start, name -> partition count. Topics that exist keep their partitions. More topics come from the broker (CreateTopics, auto-create).',
  }),
);

export const RetentionBytesOption = Type.Optional(
  Type.Integer({
    minimum: 1,
    description: 'Per partition: once the log holds more bytes than this, the oldest batches (embedded: whole segments, never the active one) are dropped and logStartOffset moves. Unset: no size bound.',
  }),
);

export const RetentionOption = Type.Optional(
  Duration('Per partition: batches (embedded: whole segments) appended longer ago than this are dropped and logStartOffset moves. Age is broker append time, not record timestamps. Unset: kept forever.'),
);

/** Consumer group offsets: group -> "topic\0partition" -> committed offset. */
export class GroupOffsetTable {
  readonly groups = new Map<string, Map<string, CommittedOffset>>();

  static key(topic: string, partition: number): string {
    return `${topic}\0${partition}`;
  }

  set(group: string, topic: string, partition: number, c: CommittedOffset): void {
    let g = this.groups.get(group);
    if (g === undefined) this.groups.set(group, (g = new Map()));
    g.set(GroupOffsetTable.key(topic, partition), c);
  }

  get(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(group)?.get(GroupOffsetTable.key(topic, partition));
  }

  /** Forgets every group's offsets of a topic; returns true when any went. */
  dropTopic(topic: string): boolean {
    const prefix = `${topic}\0`;
    let any = false;
    for (const [name, g] of this.groups) {
      for (const k of g.keys()) if (k.startsWith(prefix)) (g.delete(k), (any = true));
      if (g.size === 0) this.groups.delete(name);
    }
    return any;
  }

  names(): string[] {
    return [...this.groups.keys()];
  }
}
