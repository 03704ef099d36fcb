/** host:port parsing, CIDR matching and duration parsing. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseHostPort, formatHostPort, Cidr } from '../../src/util/address';
import { parseDuration, DURATION_PATTERN } from '../../src/util/duration';

describe('parseHostPort', () => {
  const good: [string, string, number][] = [
    ['127.0.0.1:6379', '127.0.0.1', 6379],
    ['0.0.0.0:0', '0.0.0.0', 0],
    ['localhost:65535', 'localhost', 65535],
    ['redis-1.cache_ns.svc.cluster.local:6380', 'redis-1.cache_ns.svc.cluster.local', 6380],
    ['[::1]:9901', '::1', 9901],
    ['[::]:80', '::', 80],
    ['[2001:db8::42]:443', '2001:db8::42', 443],
    ['[::ffff:10.0.0.1]:80', '::ffff:10.0.0.1', 80],
    ['host:0080', 'host', 80],
  ];
  for (const [input, host, port] of good) {
    test(`accepts ${input}`, () => {
      assert.deepEqual(parseHostPort(input), { host, port });
    });
  }

  const bad: [string, RegExp][] = [
    ['localhost', /^'localhost' must be host:port$/],
    ['', /must be host:port/],
    [':80', /must be host:port/],
    ['host:', /port '' is not a number/],
    ['host:http', /port 'http' is not a number/],
    ['host:-1', /port '-1' is not a number/],
    ['host:123456', /is not a number/],
    ['host:65536', /port 65536 is out of range \(0-65535\)/],
    ['1.2.3.4:99999', /port 99999 is out of range/],
    ['::1:80', /write IPv6 addresses as \[addr\]:port/],
    ['2001:db8::1:443', /write IPv6 addresses as \[addr\]:port/],
    ['[::1]', /is not \[ipv6\]:port/],
    ['[::1]80', /is not \[ipv6\]:port/],
    ['[::1:80', /is not \[ipv6\]:port/],
    ['[1.2.3.4]:80', /'1\.2\.3\.4' is not an IPv6 address/],
    ['[nope]:80', /is not an IPv6 address/],
    ['bad host:80', /host 'bad host' is not a valid host name or address/],
    ['h/st:80', /is not a valid host name/],
  ];
  for (const [input, why] of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      const r = parseHostPort(input);
      assert.equal(typeof r, 'string', `accepted ${JSON.stringify(r)}`);
      assert.match(r as string, why);
    });
  }

  test('formatHostPort brackets IPv6 only, and round-trips', () => {
    assert.equal(formatHostPort('::1', 80), '[::1]:80');
    assert.equal(formatHostPort('2001:db8::1', 443), '[2001:db8::1]:443');
    assert.equal(formatHostPort('10.0.0.1', 80), '10.0.0.1:80');
    assert.equal(formatHostPort('example.com', 80), 'example.com:80');
    for (const [h, p] of [
      ['::1', 1],
      ['10.0.0.1', 2],
      ['example.com', 3],
    ] as const) {
      assert.deepEqual(parseHostPort(formatHostPort(h, p)), { host: h, port: p });
    }
  });
});

describe('Cidr', () => {
  function check(cidr: string, inside: string[], outside: string[]): void {
    const c = new Cidr(cidr);
    for (const ip of inside) assert.equal(c.contains(ip), true, `${ip} should be in ${cidr}`);
    for (const ip of outside) assert.equal(c.contains(ip), false, `${ip} should not be in ${cidr}`);
  }

  test('IPv4', () => {
    check('10.0.0.0/8', ['10.0.0.0', '10.1.2.3', '10.255.255.255'], ['9.255.255.255', '11.0.0.0', '110.0.0.1']);
    check('192.168.1.0/24', ['192.168.1.0', '192.168.1.255'], ['192.168.0.255', '192.168.2.0']);
    check('172.16.0.0/12', ['172.16.0.1', '172.31.255.255'], ['172.15.255.255', '172.32.0.0']);
    check('10.0.0.4/31', ['10.0.0.4', '10.0.0.5'], ['10.0.0.3', '10.0.0.6']);
    check('255.255.255.255/32', ['255.255.255.255'], ['255.255.255.254']);
  });

  test('a bare address is a single host', () => {
    check('1.2.3.4', ['1.2.3.4'], ['1.2.3.5', '1.2.3.3']);
    check('::1', ['::1', '0:0:0:0:0:0:0:1'], ['::2', '::']);
  });

  test('host bits in the network address are ignored', () => {
    check('10.1.2.3/8', ['10.9.9.9'], ['11.1.2.3']);
  });

  test('/0 matches every address of its own family only', () => {
    check('0.0.0.0/0', ['0.0.0.0', '8.8.8.8', '255.255.255.255'], ['::1', '2001:db8::1']);
    check('::/0', ['::', '::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], ['127.0.0.1']);
  });

  test('IPv6', () => {
    check('2001:db8::/32', ['2001:db8::', '2001:0db8:ffff:ffff::1', '2001:DB8::abcd'], ['2001:db9::', '2001:db7:ffff::1', '3001:db8::']);
    check('fe80::/10', ['fe80::1', 'febf:ffff::1'], ['fec0::1', 'fe7f::1']);
    check('2001:db8:0:1::/64', ['2001:db8:0:1:ffff:ffff:ffff:ffff', '2001:db8::1:0:0:0:1'], ['2001:db8:0:2::', '2001:db8::']);
    check('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127', ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd']);
    check('1::/16', ['1:ffff::'], ['2::']);
  });

  test('an IPv4-mapped IPv6 client matches an IPv4 CIDR', () => {
    check('127.0.0.0/8', ['::ffff:127.0.0.1', '::ffff:127.255.0.9', '127.0.0.1'], ['::ffff:128.0.0.1', '::1']);
    check('10.0.0.0/8', ['::ffff:10.20.30.40'], ['::ffff:11.0.0.1', '::10.0.0.1']);
  });

  test('an IPv6 CIDR written with a dotted IPv4 tail', () => {
    check('::ffff:0:0/96', ['::ffff:10.0.0.1', '::ffff:255.255.255.255'], ['::fffe:10.0.0.1', '2001:db8::1']);
    check('::ffff:10.0.0.0/104', ['::ffff:10.1.2.3'], ['::ffff:11.0.0.1']);
  });

  test('something that is not an address is never contained', () => {
    const c = new Cidr('0.0.0.0/0');
    assert.equal(c.contains(''), false);
    assert.equal(c.contains('localhost'), false);
    assert.equal(c.contains('10.0.0'), false);
  });

  const bad: [string, RegExp][] = [
    ['nonsense', /'nonsense' is not a CIDR/],
    ['300.0.0.0/8', /not a CIDR/],
    ['10.0.0/8', /not a CIDR/],
    ['/8', /not a CIDR/],
    ['10.0.0.0/33', /'10\.0\.0\.0\/33': prefix length must be 0-32/],
    ['10.0.0.0/-1', /prefix length must be 0-32/],
    ['10.0.0.0/x', /prefix length must be 0-32/],
    ['10.0.0.0/8.5', /prefix length must be 0-32/],
    ['10.0.0.0/8/8', /prefix length/],
    ['::/129', /prefix length must be 0-128/],
  ];
  for (const [text, why] of bad) {
    test(`rejects ${text}`, () => {
      assert.throws(() => new Cidr(text), why);
    });
  }

  test('rejects an empty prefix length instead of reading it as /0', () => {
    // Number('') is 0: '10.0.0.0/' would otherwise match every IPv4 client.
    assert.throws(() => new Cidr('10.0.0.0/'), /prefix length/);
    assert.throws(() => new Cidr('::/'), /prefix length/);
  });

  test('rejects prefix lengths that are not plain decimal digits', () => {
    for (const text of ['10.0.0.0/ 8', '10.0.0.0/0x8', '10.0.0.0/1e1']) {
      assert.throws(() => new Cidr(text), /prefix length/, `accepted ${text}`);
    }
  });
});

describe('parseDuration', () => {
  const good: [string | number, number][] = [
    [0, 0],
    [250, 250],
    ['0ms', 0],
    ['250ms', 250],
    ['5s', 5000],
    ['0s', 0],
    ['2m', 120_000],
    ['90m', 5_400_000],
    ['1h', 3_600_000],
    ['24h', 86_400_000],
    ['1.5s', 1500],
    ['0.25m', 15_000],
    ['0.5h', 1_800_000],
    ['007s', 7000],
  ];
  for (const [input, ms] of good) {
    test(`${JSON.stringify(input)} is ${ms} ms`, () => {
      assert.equal(parseDuration(input), ms);
    });
  }

  const bad = ['', '5', '5 s', ' 5s', '-1s', '+1s', '1d', '5S', '5sec', 's', '.5s', '1.s', '1h30m', '1e3ms', 'ms'];
  for (const input of bad) {
    test(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseDuration(input), /invalid duration/);
    });
  }

  test('the schema pattern accepts exactly what parseDuration accepts', () => {
    const re = new RegExp(DURATION_PATTERN);
    for (const [input] of good) if (typeof input === 'string') assert.ok(re.test(input), input);
    for (const input of bad) assert.ok(!re.test(input), input);
  });
});
