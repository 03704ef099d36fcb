/**
 * The consumer group coordinator (Kafka's classic group protocol, KIP-345
 * static membership aside). Group state lives in memory; committed offsets
 * live in the log component (the listener stores them).
 *
 * States: Empty -> PreparingRebalance (a member joined, left or timed out;
 * everyone must rejoin) -> CompletingRebalance (generation bumped, the
 * leader got the member list and must send the assignments) -> Stable (the
 * leader's SyncGroup handed every member its assignment).
 *
 * Member ids: a v4+ JoinGroup without one gets MEMBER_ID_REQUIRED and a new
 * id to join with (it counts as a pending member until then); older versions
 * get the id in the JoinGroup answer. Timeouts (session, rebalance, pending
 * members, the initial rebalance delay) are checked by one coarse interval
 * timer, not a timer per request.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../logger';
import { KafkaError } from './error-codes';
import type { GroupDescription, JoinGroupRequest, JoinGroupResponse } from './apis/groups';

export interface CoordinatorOptions {
  /** Wait this long after the first member joins an empty group, so members starting together land in one generation. */
  initialRebalanceDelayMs: number;
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  /** How often timeouts are checked. */
  tickMs: number;
}

type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable';

export interface SyncResult {
  errorCode: number;
  assignment: Buffer;
}

const EMPTY = Buffer.alloc(0);

class Member {
  assignment: Buffer = EMPTY;
  joinWaiter: ((r: JoinGroupResponse) => void) | null = null;
  syncWaiter: ((r: SyncResult) => void) | null = null;
  lastSeen: number;
  constructor(
    readonly memberId: string,
    readonly clientId: string,
    readonly clientHost: string,
    public sessionTimeoutMs: number,
    public rebalanceTimeoutMs: number,
    public protocols: { name: string; metadata: Buffer }[],
    now: number,
  ) {
    this.lastSeen = now;
  }
}

class Group {
  state: GroupState = 'Empty';
  generationId = 0;
  protocolType: string | null = null;
  protocolName: string | null = null;
  leaderId: string | null = null;
  readonly members = new Map<string, Member>();
  /** Ids handed out with MEMBER_ID_REQUIRED, and when they lapse. */
  readonly pending = new Map<string, number>();
  rebalanceDeadline = 0;
  joinNotBefore = 0;
  constructor(readonly groupId: string) {}
}

function sameProtocols(a: { name: string; metadata: Buffer }[], b: { name: string; metadata: Buffer }[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i]!.name && p.metadata.equals(b[i]!.metadata));
}

function joinError(errorCode: number, memberId = ''): JoinGroupResponse {
  return { errorCode, generationId: -1, protocolName: '', leader: '', memberId, members: [] };
}

export class GroupCoordinator {
  private readonly groups = new Map<string, Group>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private opts: CoordinatorOptions,
    private readonly log: Logger,
  ) {}

  /** A reload may change the options; groups carry on. */
  configure(opts: CoordinatorOptions): void {
    this.opts = opts;
  }

  private ensureTimer(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.tick(performance.now()), this.opts.tickMs);
    this.timer.unref();
  }

  join(req: JoinGroupRequest, version: number, clientId: string, clientHost: string): JoinGroupResponse | Promise<JoinGroupResponse> {
    const now = performance.now();
    if (req.groupId === '') return joinError(KafkaError.INVALID_GROUP_ID, req.memberId);
    if (req.sessionTimeoutMs < this.opts.minSessionTimeoutMs || req.sessionTimeoutMs > this.opts.maxSessionTimeoutMs) {
      return joinError(KafkaError.INVALID_SESSION_TIMEOUT, req.memberId);
    }
    if (req.protocols.length === 0 || req.protocolType === '') return joinError(KafkaError.INCONSISTENT_GROUP_PROTOCOL, req.memberId);
    let g = this.groups.get(req.groupId);
    if (g === undefined) {
      g = new Group(req.groupId);
      this.groups.set(req.groupId, g);
    }
    this.ensureTimer();
    if (g.members.size > 0 && !this.compatible(g, req)) return joinError(KafkaError.INCONSISTENT_GROUP_PROTOCOL, req.memberId);
    let memberId = req.memberId;
    if (memberId === '') {
      memberId = `${clientId || 'member'}-${randomUUID()}`;
      if (version >= 4) {
        g.pending.set(memberId, now + req.sessionTimeoutMs);
        return joinError(KafkaError.MEMBER_ID_REQUIRED, memberId);
      }
    } else if (!g.members.has(memberId) && !g.pending.has(memberId)) {
      return joinError(KafkaError.UNKNOWN_MEMBER_ID, memberId);
    }
    g.pending.delete(memberId);
    let m = g.members.get(memberId);
    if (m === undefined) {
      m = new Member(memberId, clientId, clientHost, req.sessionTimeoutMs, req.rebalanceTimeoutMs, req.protocols, now);
      g.members.set(memberId, m);
      if (g.members.size === 1) g.protocolType = req.protocolType;
    } else if (g.state === 'Stable' && memberId !== g.leaderId && sameProtocols(m.protocols, req.protocols)) {
      // A follower rejoining with nothing changed gets the current generation back; no rebalance (as Kafka does).
      m.lastSeen = now;
      return { errorCode: KafkaError.NONE, generationId: g.generationId, protocolName: g.protocolName ?? '', leader: g.leaderId ?? '', memberId, members: [] };
    } else {
      m.sessionTimeoutMs = req.sessionTimeoutMs;
      m.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
      m.protocols = req.protocols;
      m.lastSeen = now;
      // A second join while one waits: the older request is answered as superseded.
      m.joinWaiter?.(joinError(KafkaError.REBALANCE_IN_PROGRESS, memberId));
    }
    const member = m;
    const answer = new Promise<JoinGroupResponse>((resolve) => {
      member.joinWaiter = resolve;
    });
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g, now, `member ${memberId} joined`);
    this.maybeCompleteJoin(g, now);
    return answer;
  }

  /** The request's protocol type matches, and one of its protocols is supported by every member. */
  private compatible(g: Group, req: JoinGroupRequest): boolean {
    if (g.protocolType !== null && g.protocolType !== req.protocolType) return false;
    return req.protocols.some((p) => {
      for (const m of g.members.values()) {
        if (m.memberId === req.memberId) continue;
        if (!m.protocols.some((q) => q.name === p.name)) return false;
      }
      return true;
    });
  }

  private prepareRebalance(g: Group, now: number, why: string): void {
    if (g.state === 'CompletingRebalance') {
      for (const m of g.members.values()) {
        const w = m.syncWaiter;
        m.syncWaiter = null;
        w?.({ errorCode: KafkaError.REBALANCE_IN_PROGRESS, assignment: EMPTY });
      }
    }
    const wasEmpty = g.state === 'Empty';
    g.state = 'PreparingRebalance';
    let timeout = 0;
    for (const m of g.members.values()) timeout = Math.max(timeout, m.rebalanceTimeoutMs);
    g.rebalanceDeadline = now + timeout;
    g.joinNotBefore = wasEmpty ? now + Math.min(this.opts.initialRebalanceDelayMs, timeout) : now;
    this.log.debug({ group: g.groupId, generation: g.generationId, reason: why }, 'group rebalancing');
  }

  private maybeCompleteJoin(g: Group, now: number): void {
    if (g.state !== 'PreparingRebalance') return;
    if (now < g.joinNotBefore && now < g.rebalanceDeadline) return;
    if (g.pending.size > 0 && now < g.rebalanceDeadline) return;
    for (const m of g.members.values()) if (m.joinWaiter === null && now < g.rebalanceDeadline) return;
    this.completeJoin(g, now);
  }

  private completeJoin(g: Group, now: number): void {
    for (const [id, m] of g.members) {
      if (m.joinWaiter === null) {
        g.members.delete(id);
        this.log.debug({ group: g.groupId, member: id }, 'member removed: it did not rejoin within the rebalance timeout');
      }
    }
    g.pending.clear();
    g.generationId++;
    if (g.members.size === 0) {
      g.state = 'Empty';
      g.protocolName = null;
      g.protocolType = null;
      g.leaderId = null;
      return;
    }
    const members = [...g.members.values()];
    g.protocolName = this.selectProtocol(members);
    if (g.leaderId === null || !g.members.has(g.leaderId)) g.leaderId = members[0]!.memberId;
    g.state = 'CompletingRebalance';
    for (const m of members) {
      m.assignment = EMPTY;
      m.lastSeen = now;
    }
    const list = members.map((m) => ({ memberId: m.memberId, groupInstanceId: null, metadata: m.protocols.find((p) => p.name === g.protocolName)!.metadata }));
    this.log.debug({ group: g.groupId, generation: g.generationId, members: members.length, protocol: g.protocolName }, 'group generation complete');
    for (const m of members) {
      const w = m.joinWaiter!;
      m.joinWaiter = null;
      w({
        errorCode: KafkaError.NONE,
        generationId: g.generationId,
        protocolName: g.protocolName,
        leader: g.leaderId,
        memberId: m.memberId,
        members: m.memberId === g.leaderId ? list : [],
      });
    }
  }

  /** Among protocols every member supports, each member votes for its first; most votes wins. */
  private selectProtocol(members: Member[]): string {
    const common = members[0]!.protocols.map((p) => p.name).filter((n) => members.every((m) => m.protocols.some((p) => p.name === n)));
    const votes = new Map<string, number>();
    for (const m of members) {
      const pick = m.protocols.find((p) => common.includes(p.name));
      if (pick) votes.set(pick.name, (votes.get(pick.name) ?? 0) + 1);
    }
    let best = common[0]!;
    for (const n of common) if ((votes.get(n) ?? 0) > (votes.get(best) ?? 0)) best = n;
    return best;
  }

  sync(groupId: string, generationId: number, memberId: string, assignments: { memberId: string; assignment: Buffer }[]): SyncResult | Promise<SyncResult> {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return { errorCode: KafkaError.UNKNOWN_MEMBER_ID, assignment: EMPTY };
    if (generationId !== g.generationId) return { errorCode: KafkaError.ILLEGAL_GENERATION, assignment: EMPTY };
    m.lastSeen = performance.now();
    if (g.state === 'PreparingRebalance') return { errorCode: KafkaError.REBALANCE_IN_PROGRESS, assignment: EMPTY };
    if (g.state === 'Stable') return { errorCode: KafkaError.NONE, assignment: m.assignment };
    const answer = new Promise<SyncResult>((resolve) => {
      m.syncWaiter?.({ errorCode: KafkaError.REBALANCE_IN_PROGRESS, assignment: EMPTY });
      m.syncWaiter = resolve;
    });
    if (memberId === g.leaderId) {
      for (const a of assignments) {
        const target = g.members.get(a.memberId);
        if (target !== undefined) target.assignment = a.assignment;
      }
      g.state = 'Stable';
      for (const x of g.members.values()) {
        const w = x.syncWaiter;
        x.syncWaiter = null;
        w?.({ errorCode: KafkaError.NONE, assignment: x.assignment });
      }
    }
    return answer;
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generationId) return KafkaError.ILLEGAL_GENERATION;
    m.lastSeen = performance.now();
    if (g.state === 'PreparingRebalance') return KafkaError.REBALANCE_IN_PROGRESS;
    return KafkaError.NONE;
  }

  leave(groupId: string, memberIds: string[]): { topError: number; errors: number[] } {
    const g = this.groups.get(groupId);
    if (g === undefined) return { topError: KafkaError.UNKNOWN_MEMBER_ID, errors: memberIds.map(() => KafkaError.UNKNOWN_MEMBER_ID) };
    const now = performance.now();
    const errors = memberIds.map((id) => (this.removeMember(g, id, now, 'left the group') ? KafkaError.NONE : KafkaError.UNKNOWN_MEMBER_ID));
    return { topError: memberIds.length === 1 ? errors[0]! : KafkaError.NONE, errors };
  }

  private removeMember(g: Group, memberId: string, now: number, why: string): boolean {
    const m = g.members.get(memberId);
    if (m === undefined) return g.pending.delete(memberId);
    g.members.delete(memberId);
    m.joinWaiter?.(joinError(KafkaError.UNKNOWN_MEMBER_ID, memberId));
    m.syncWaiter?.({ errorCode: KafkaError.UNKNOWN_MEMBER_ID, assignment: EMPTY });
    m.joinWaiter = m.syncWaiter = null;
    if (g.leaderId === memberId) g.leaderId = null;
    this.log.debug({ group: g.groupId, member: memberId, reason: why }, 'member removed');
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g, now, `member ${memberId} ${why}`);
    this.maybeCompleteJoin(g, now);
    return true;
  }

  /**
   * Whether an OffsetCommit may be stored: a simple commit (generation -1, no
   * member) always may; a group member's only from its current generation
   * and not while the leader is assigning.
   */
  commitAllowed(groupId: string, generationId: number, memberId: string): number {
    if (generationId < 0 && memberId === '') return KafkaError.NONE;
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return generationId < 0 ? KafkaError.NONE : KafkaError.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generationId) return KafkaError.ILLEGAL_GENERATION;
    if (g.state === 'CompletingRebalance') return KafkaError.REBALANCE_IN_PROGRESS;
    m.lastSeen = performance.now();
    return KafkaError.NONE;
  }

  describe(groupId: string): GroupDescription {
    const g = this.groups.get(groupId);
    if (g === undefined) return { errorCode: KafkaError.NONE, groupId, state: 'Dead', protocolType: '', protocolData: '', members: [] };
    return {
      errorCode: KafkaError.NONE,
      groupId,
      state: g.state,
      protocolType: g.protocolType ?? '',
      protocolData: g.state === 'Stable' ? (g.protocolName ?? '') : '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === g.protocolName)?.metadata ?? EMPTY,
        assignment: m.assignment,
      })),
    };
  }

  /** Groups with members (or a state), by id, with their protocol type. */
  list(): { groupId: string; protocolType: string }[] {
    return [...this.groups.values()].map((g) => ({ groupId: g.groupId, protocolType: g.protocolType ?? '' }));
  }

  isActive(groupId: string): boolean {
    const g = this.groups.get(groupId);
    return g !== undefined && g.members.size > 0;
  }

  /** Checks session timeouts, rebalance deadlines and lapsed pending ids. Public for tests. */
  tick(now: number): void {
    for (const g of this.groups.values()) {
      for (const [id, until] of g.pending) if (now >= until) g.pending.delete(id);
      for (const m of [...g.members.values()]) {
        if (m.joinWaiter === null && now - m.lastSeen > m.sessionTimeoutMs) this.removeMember(g, m.memberId, now, 'timed out (no heartbeat within the session timeout)');
      }
      this.maybeCompleteJoin(g, now);
      if (g.state === 'Empty' && g.members.size === 0 && g.pending.size === 0) this.groups.delete(g.groupId);
    }
    if (this.groups.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const g of this.groups.values()) {
      for (const m of g.members.values()) {
        m.joinWaiter?.(joinError(KafkaError.COORDINATOR_NOT_AVAILABLE, m.memberId));
        m.syncWaiter?.({ errorCode: KafkaError.COORDINATOR_NOT_AVAILABLE, assignment: EMPTY });
      }
    }
    this.groups.clear();
  }
}
