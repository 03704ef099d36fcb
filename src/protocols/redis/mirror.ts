/**
 * Request mirroring: a sampled share of a listener's requests is copied to a
 * shadow cluster, fire and forget. The copy goes out on the shadow's shared
 * links after the real request; its reply is dropped here, and a failure
 * (connection error or error reply) is only counted. The client's reply never
 * waits for the shadow.
 */
import type { Cluster } from '../../routing/cluster';
import type { Counter } from '../../metrics';
import type { ProxyError } from '../../errors';
import { RespType } from './codec';
import type { ReplySink } from './upstream';

export interface MirrorOptions {
  cluster: string;
  /** 0..1 */
  sample: number;
  /** Only commands flagged write. */
  writesOnly: boolean;
}

/** One shadow cluster. Also the sink of every copy sent to it (one object, no closure per request). */
export class MirrorTarget implements ReplySink {
  constructor(
    readonly cluster: Cluster,
    readonly sample: number,
    readonly writesOnly: boolean,
    readonly sent: Counter,
    readonly failed: Counter,
  ) {}

  /** Whether this request is copied (the sampling draw). */
  draw(): boolean {
    return this.sample >= 1 || (this.sample > 0 && Math.random() < this.sample);
  }

  onReply(_buf: Buffer, _start: number, _end: number, type: number): void {
    if (type === RespType.Error || type === RespType.BulkError) this.failed.inc();
  }

  onError(_err: ProxyError): void {
    this.failed.inc();
  }
}
