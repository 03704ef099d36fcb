/**
 * Client AUTH and command permissions on a Redis listener, and Portway's own
 * AUTH/SELECT towards a redis-server that requires a password. Error texts
 * are compared with what the real server answers for the same ACL user.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import Redis from 'ioredis';
import { startPortway, type InProcess } from '../helpers/portway';
import { startRedis, type RedisServer } from '../helpers/redis';
import { http } from '../helpers/net';
import { RespReplyDecoder } from '../../src/protocols/redis/reply-decoder';
import { sha256 } from '../../src/protocols/redis/acl';

const UP_PW = 'upstream-pass-7c1';
const CLIENT_PW = 'client-pass-93a';
const RO_PW = 'ro-pass-44d';

/** Sends raw bytes and returns the first `n` replies (as text), or fewer if the peer closes. */
function replies(port: number, data: string, n: number): Promise<{ replies: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const out: string[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ replies: out, closed });
    };
    const dec = new RespReplyDecoder({
      onReply: (buf, start, end) => {
        out.push(buf.toString('latin1', start, end));
        if (out.length >= n) finish(false);
      },
      onError: (e) => reject(e),
    });
    s.on('data', (c: Buffer) => dec.push(c));
    s.on('close', () => finish(true));
    s.on('error', reject);
    s.setTimeout(5000, () => finish(false));
    s.write(data.replace(/\n/g, '\r\n'));
  });
}

describe('Redis listener AUTH, ACL rules and upstream credentials', () => {
  let redis: RedisServer;
  let pw: InProcess;
  let port: number;
  let bad: number;
  let direct: Redis;
  const clients: Redis[] = [];
  const c = (opts: Record<string, unknown>) => {
    const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, ...opts });
    clients.push(r);
    return r;
  };

  before(async () => {
    redis = await startRedis();
    direct = new Redis({ port: redis.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    // The same user on the real server, to compare error texts.
    await direct.call('ACL', 'SETUSER', 'ro', 'on', `>${RO_PW}`, '~*', '-@all', '+@read', '+ping', '+config|get');
    await direct.call('ACL', 'SETUSER', 'tx', 'on', `>${RO_PW}`, '~*', '-@all', '+@read', '+multi', '+exec');
    await direct.call('CONFIG', 'SET', 'requirepass', UP_PW);
    await direct.auth(UP_PW);
    pw = await startPortway(`
listeners:
  - name: redis
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
    options:
      users:
        - { password: ${CLIENT_PW} }
        - { name: tx, password: ${RO_PW}, commands: ["-@all", "+@read", "+multi", "+exec"] }
        - { name: ro, password_sha256: "${sha256(RO_PW).toString('hex')}", commands: ["-@all", "+@read", "+ping", "+config|get"] }
      upstreams:
        r: { password: ${UP_PW}, db: 2 }
  - name: bad
    address: 127.0.0.1:0
    protocol: redis
    routes: [{ cluster: r }]
    options:
      upstreams:
        r: { password: not-the-password }
clusters:
  - { name: r, endpoints: ["${redis.address}"], connect_timeout: 1s }
`);
    port = pw.port('redis');
    bad = pw.port('bad');
  });
  after(async () => {
    for (const r of clients) r.disconnect();
    direct?.disconnect();
    await pw?.stop();
    await redis?.stop();
  });

  test('before AUTH: NOAUTH, QUIT allowed, HELLO needs AUTH; texts as the real server', async () => {
    const seq = 'GET k\nPING\nHELLO 3\nAUTH a b c\nAUTH ro wrong\nNOSUCH x\nGET\nAUTH\nQUIT\n';
    const viaPortway = await replies(port, seq, 9);
    const real = await replies(redis.port, seq, 9);
    assert.deepEqual(viaPortway.replies, real.replies);
    assert.deepEqual(viaPortway.replies.slice(0, 2), ['-NOAUTH Authentication required.\r\n', '-NOAUTH Authentication required.\r\n']);
    assert.match(viaPortway.replies[2]!, /^-NOAUTH HELLO must be called with the client already authenticated/);
    assert.equal(viaPortway.replies[3], '-ERR syntax error\r\n');
    assert.equal(viaPortway.replies[4], '-WRONGPASS invalid username-password pair or user is disabled.\r\n');
    assert.equal(viaPortway.replies[7], "-ERR wrong number of arguments for 'auth' command\r\n");
    assert.equal(viaPortway.replies[8], '+OK\r\n');
  });

  test('denied commands answer NOPERM as the real server does, MULTI aborts at EXEC', async () => {
    const seq = `AUTH ro ${RO_PW}\nSET k v\nCONFIG SET maxmemory 1\nCONFIG GET maxmemory\nMULTI\nSET k v\nGET k\nEXEC\nRESET\nGET k\n`;
    const viaPortway = await replies(port, seq, 10);
    const real = await replies(redis.port, seq, 10);
    // CONFIG GET answers differ (Portway forwards it to a server where it is allowed): compare the rest.
    const pick = (r: string[]) => r.filter((_, i) => i !== 3);
    assert.deepEqual(pick(viaPortway.replies), pick(real.replies));
    assert.equal(viaPortway.replies[1], "-NOPERM this user has no permissions to run the 'set' command\r\n");
    assert.equal(viaPortway.replies[2], "-NOPERM this user has no permissions to run the 'config|set' command\r\n");
    assert.match(viaPortway.replies[3]!, /^\*2\r\n\$9\r\nmaxmemory\r\n/);
    assert.equal(viaPortway.replies[7], "-EXECABORT Transaction discarded because of: NOPERM this user has no permissions to run the 'exec' command\r\n");
    assert.equal(viaPortway.replies[9], '-NOAUTH Authentication required.\r\n', 'RESET de-authenticates');
    // A user that may run MULTI and EXEC: a refused command inside the transaction aborts it.
    const tx = `AUTH tx ${RO_PW}\nMULTI\nGET k\nSET k v\nEXEC\nGET k\nMULTI\nGET k\nEXEC\n`;
    const p2 = await replies(port, tx, 9);
    const r2 = await replies(redis.port, tx, 9);
    assert.deepEqual(p2.replies, r2.replies);
    assert.equal(p2.replies[4], '-EXECABORT Transaction discarded because of previous errors.\r\n');
    assert.equal(p2.replies[8], '*1\r\n$-1\r\n', 'the next transaction runs normally');
  });

  test('ioredis with password, with username, and HELLO 3 AUTH; data lands in the configured db', async () => {
    const r = c({ password: CLIENT_PW });
    assert.equal(await r.set('auth:k', 'v1'), 'OK');
    assert.equal(await r.get('auth:k'), 'v1');
    await direct.select(2);
    assert.equal(await direct.get('auth:k'), 'v1', 'shared links SELECT db 2');
    await direct.select(0);
    assert.equal(await direct.get('auth:k'), null);
    // A dedicated link (MULTI) authenticates and selects the same db.
    const tx = await r.multi().set('auth:tx', 't').get('auth:tx').exec();
    assert.deepEqual(tx, [[null, 'OK'], [null, 't']]);
    await direct.select(2);
    assert.equal(await direct.get('auth:tx'), 't');
    // A client SELECT n is its own database on the server.
    assert.equal(await r.select(5), 'OK');
    await r.set('auth:db5', 'x');
    await direct.select(5);
    assert.equal(await direct.get('auth:db5'), 'x');
    // ... and SELECT 0 goes back to the configured database.
    assert.equal(await r.select(0), 'OK');
    await r.set('auth:back', 'y');
    await direct.select(2);
    assert.equal(await direct.get('auth:back'), 'y');
    await direct.select(0);

    const ro = c({ username: 'ro', password: RO_PW, enableReadyCheck: false });
    assert.equal(await ro.get('auth:k'), 'v1');
    await assert.rejects(ro.set('auth:k', 'nope'), /NOPERM this user has no permissions to run the 'set' command/);
    const h = await replies(port, `HELLO 3 AUTH ro ${RO_PW} SETNAME app\nGET auth:k\nCLIENT GETNAME\n`, 3);
    assert.match(h.replies[0]!, /^%7\r\n/);
    assert.equal(h.replies[1], '$2\r\nv1\r\n');
    assert.equal(h.replies[2], "-NOPERM this user has no permissions to run the 'client|getname' command\r\n");
    const wrong = c({ password: 'wrong', retryStrategy: () => null });
    wrong.on('error', () => {});
    await assert.rejects(wrong.ping(), /WRONGPASS|Connection is closed/);
  });

  test('unauthenticated clients get redis limits on request size', async () => {
    const many = `*20\r\n$3\r\nGET\r\n${'$1\r\nk\r\n'.repeat(19)}`;
    const res = await replies(port, many, 1);
    assert.equal(res.replies[0], '-ERR Protocol error: unauthenticated multibulk length\r\n');
    const after = await replies(port, `AUTH ${CLIENT_PW}\n${many.replace(/\r\n/g, '\n')}`, 2);
    assert.equal(after.replies[0], '+OK\r\n');
    assert.match(after.replies[1]!, /^-ERR wrong number of arguments for 'get'/);
  });

  test('a refused upstream AUTH fails requests with a clear error, and no secret is shown', async () => {
    const res = await replies(bad, 'GET k\n', 1);
    assert.match(res.replies[0]!, /^-ERR upstream 127\.0\.0\.1:\d+ refused the connection setup: WRONGPASS invalid username-password pair/);
    assert.ok(!res.replies[0]!.includes('not-the-password'));
    const cfg = (await http('GET', `${pw.admin}/config`)).body;
    for (const secret of [UP_PW, CLIENT_PW, 'not-the-password', sha256(RO_PW).toString('hex')]) assert.ok(!cfg.includes(secret), `/config shows ${secret}`);
    const m = (await http('GET', `${pw.admin}/metrics`)).body;
    assert.match(m, /portway_redis_auth_failures_total\{listener="redis"\} [1-9]/);
  });
});
