import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { detect, MAX_LINE } from '../../src/protocols/auto/detect';

/** Detection of every prefix of b: 'more' until the decisive byte, then the answer, never a different one later. */
function at(b: Buffer): (string | null)[] {
  const out: (string | null)[] = [];
  for (let n = 1; n <= b.length; n++) out.push(detect(b, n));
  return out;
}

function settles(b: Buffer, want: string | null): void {
  const seq = at(b);
  const first = seq.findIndex((x) => x !== 'more');
  assert.ok(first >= 0, `undecided after ${b.length} bytes`);
  for (let i = 0; i < first; i++) assert.equal(seq[i], 'more');
  assert.equal(seq[first], want);
}

describe('protocol detection', () => {
  test('RESP multibulk and inline commands', () => {
    settles(Buffer.from('*1\r\n$4\r\nPING\r\n'), 'redis');
    settles(Buffer.from('*-1\r\n'), 'redis');
    settles(Buffer.from('PING\r\n'), 'redis');
    settles(Buffer.from('get key\n'), 'redis');
    // GET with a key is an inline command, not a request line.
    settles(Buffer.from('GET /key\r\n'), 'redis');
    settles(Buffer.from('*x'), null);
  });

  test('HTTP/1.x request lines', () => {
    settles(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'http');
    settles(Buffer.from('POST /RPC2 HTTP/1.0\r\n'), 'http');
    settles(Buffer.from('OPTIONS * HTTP/1.1\r\n'), 'http');
    settles(Buffer.from('CONNECT example.com:443 HTTP/1.1\r\n'), 'http');
    // A request line longer than MAX_LINE without a newline yet: the method decides.
    const long = Buffer.from('GET /' + 'a'.repeat(MAX_LINE) + ' HTTP/1.1\r\n');
    assert.equal(detect(long, MAX_LINE), 'http');
    assert.equal(detect(Buffer.from('FOO ' + 'a'.repeat(MAX_LINE)), MAX_LINE), null);
  });

  test('Kafka: size, api key and version in range', () => {
    const apiVersions = Buffer.from('0000001a00120003000000010009' + '6b61666b616a73', 'hex');
    settles(apiVersions, 'kafka');
    const badKey = Buffer.from('000000100fff0000', 'hex');
    settles(badKey, null);
    const badVersion = Buffer.from('0000001000030100', 'hex');
    settles(badVersion, null);
  });

  test('Bolt v1 and v2 requests and heartbeats', () => {
    settles(Buffer.from([0x01, 0x01, 0x00, 0x01, 0x01, 0, 0, 0, 1]), 'bolt');
    settles(Buffer.from([0x01, 0x01, 0x00, 0x00]), 'bolt');
    settles(Buffer.from([0x02, 0x01, 0x01, 0x00, 0x01]), 'bolt');
    settles(Buffer.from([0x01, 0x07, 0x00, 0x01]), null);
    settles(Buffer.from([0x01, 0x01, 0x00, 0x09]), null);
  });

  test('TLS ClientHello', () => {
    settles(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), 'tls');
    settles(Buffer.from([0x16, 0x03, 0x03]), 'tls');
    settles(Buffer.from([0x16, 0x02]), null);
    settles(Buffer.from([0x16, 0x03, 0x09]), null);
  });

  test('binary junk and control characters match nothing', () => {
    settles(Buffer.from([0xff, 0xfe]), null);
    settles(Buffer.from('GE\x00T'), null);
    assert.equal(detect(Buffer.alloc(0), 0), 'more');
  });
});
