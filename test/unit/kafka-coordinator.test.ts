import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCoordinator } from '../../src/protocols/kafka/coordinator';
import { KafkaError } from '../../src/protocols/kafka/error-codes';
import type { JoinGroupRequest, JoinGroupResponse } from '../../src/protocols/kafka/apis/groups';
import { createLogger } from '../../src/logger';

const opts = { initialRebalanceDelayMs: 0, minSessionTimeoutMs: 100, maxSessionTimeoutMs: 60_000, tickMs: 1000 };

function req(memberId: string, protocols = ['range', 'roundrobin'], sessionTimeoutMs = 10_000): JoinGroupRequest {
  return { groupId: 'g', sessionTimeoutMs, rebalanceTimeoutMs: 5_000, memberId, groupInstanceId: null, protocolType: 'consumer', protocols: protocols.map((n) => ({ name: n, metadata: Buffer.from(n) })) };
}

/** A v4+ join: MEMBER_ID_REQUIRED first, then the join with the id handed out. */
async function joinNew(c: GroupCoordinator, protocols?: string[]): Promise<{ id: string; answer: Promise<JoinGroupResponse> }> {
  const first = (await c.join(req('', protocols), 5, 'client', '127.0.0.1')) as JoinGroupResponse;
  assert.equal(first.errorCode, KafkaError.MEMBER_ID_REQUIRED);
  assert.match(first.memberId, /^client-/);
  return { id: first.memberId, answer: Promise.resolve(c.join(req(first.memberId, protocols), 5, 'client', '127.0.0.1')) };
}

test('join, sync, heartbeat, a second member rebalances, leave, timeouts', async () => {
  const c = new GroupCoordinator(opts, createLogger('silent'));
  try {
    const a = await joinNew(c);
    const ja = await a.answer;
    assert.equal(ja.errorCode, 0);
    assert.equal(ja.generationId, 1);
    assert.equal(ja.leader, a.id);
    assert.equal(ja.protocolName, 'range');
    assert.deepEqual(
      ja.members.map((m) => m.memberId),
      [a.id],
    );
    const sa = await c.sync('g', 1, a.id, [{ memberId: a.id, assignment: Buffer.from('A') }]);
    assert.deepEqual([sa.errorCode, sa.assignment.toString()], [0, 'A']);
    assert.equal(c.heartbeat('g', 1, a.id), KafkaError.NONE);
    assert.equal(c.heartbeat('g', 0, a.id), KafkaError.ILLEGAL_GENERATION);
    assert.equal(c.heartbeat('g', 1, 'nobody'), KafkaError.UNKNOWN_MEMBER_ID);
    assert.equal(c.describe('g').state, 'Stable');

    // B prefers roundrobin but supports range: the vote ties, range (first common) stays.
    const b = await joinNew(c, ['roundrobin', 'range']);
    assert.equal(c.heartbeat('g', 1, a.id), KafkaError.REBALANCE_IN_PROGRESS);
    assert.equal(c.commitAllowed('g', 1, a.id), KafkaError.NONE, 'a member may commit before it rejoins');
    const ja2 = c.join(req(a.id), 5, 'client', '127.0.0.1');
    const [r1, r2] = await Promise.all([ja2, b.answer]);
    assert.equal(r1.generationId, 2);
    assert.equal(r2.generationId, 2);
    assert.equal(r1.leader, a.id);
    assert.equal(r1.members.length, 2);
    assert.equal(r2.members.length, 0);
    // The follower waits in SyncGroup until the leader sends the assignments.
    const sb = c.sync('g', 2, b.id, []);
    assert.equal(c.commitAllowed('g', 2, b.id), KafkaError.REBALANCE_IN_PROGRESS);
    const sa2 = await c.sync('g', 2, a.id, [
      { memberId: a.id, assignment: Buffer.from('A2') },
      { memberId: b.id, assignment: Buffer.from('B2') },
    ]);
    assert.equal(sa2.assignment.toString(), 'A2');
    assert.equal((await sb).assignment.toString(), 'B2');

    // B rejoins with nothing changed while stable: same generation back at once, no rebalance.
    const again = (await c.join(req(b.id, ['roundrobin', 'range']), 5, 'client', '127.0.0.1')) as JoinGroupResponse;
    assert.deepEqual([again.errorCode, again.generationId, again.leader], [0, 2, a.id]);
    assert.equal(c.heartbeat('g', 2, a.id), KafkaError.NONE);
    assert.equal((await c.sync('g', 2, b.id, [])).assignment.toString(), 'B2');

    // B leaves: A must rejoin; the generation moves on without B.
    assert.deepEqual(c.leave('g', [b.id]).errors, [KafkaError.NONE]);
    assert.equal(c.heartbeat('g', 2, a.id), KafkaError.REBALANCE_IN_PROGRESS);
    const r3 = await c.join(req(a.id), 5, 'client', '127.0.0.1');
    assert.equal(r3.generationId, 3);
    assert.equal(r3.members.length, 1);
    await c.sync('g', 3, a.id, []);

    // A stops heartbeating: the session timeout removes it; the group is empty.
    c.tick(performance.now() + 20_000);
    assert.equal(c.heartbeat('g', 3, a.id), KafkaError.UNKNOWN_MEMBER_ID);
    assert.equal(c.isActive('g'), false);
  } finally {
    c.close();
  }
});

test('a member that does not rejoin within the rebalance timeout is dropped; bad requests get their errors', async () => {
  const c = new GroupCoordinator(opts, createLogger('silent'));
  try {
    const a = await joinNew(c);
    await a.answer;
    await c.sync('g', 1, a.id, []);
    const b = await joinNew(c);
    // A never rejoins: after the rebalance timeout B's generation completes alone.
    c.tick(performance.now() + 6_000);
    const rb = await b.answer;
    assert.equal(rb.generationId, 2);
    assert.equal(rb.leader, b.id);
    assert.equal(rb.members.length, 1);
    assert.equal((await c.join(req('unknown-id'), 5, 'x', 'h')).errorCode, KafkaError.UNKNOWN_MEMBER_ID);
    assert.equal((await c.join(req('', ['other']), 5, 'x', 'h')).errorCode, KafkaError.INCONSISTENT_GROUP_PROTOCOL);
    assert.equal((await c.join(req('', undefined, 10), 5, 'x', 'h')).errorCode, KafkaError.INVALID_SESSION_TIMEOUT);
    // v3 and older: no MEMBER_ID_REQUIRED round, the id comes with the join answer.
    const old = c.join(req(''), 3, 'old', 'h');
    assert.equal(c.heartbeat('g', 2, b.id), KafkaError.REBALANCE_IN_PROGRESS);
    const rb2 = c.join(req(b.id), 5, 'x', 'h');
    const [ro] = await Promise.all([old, rb2]);
    assert.equal(ro.errorCode, 0);
    assert.match(ro.memberId, /^old-/);
    assert.equal(ro.generationId, 3);
  } finally {
    c.close();
  }
});
