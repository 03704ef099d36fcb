import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { IdleSweeper, idleSweeper } from '../../src/util/idle-sweep';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('idle sweeper', () => {
  test('reports a silent member after the timeout, not an active one, once per idle period', async () => {
    const s = new IdleSweeper(200);
    const idle: string[] = [];
    const quiet = { idleMark: 0, onIdleSweep: () => idle.push('quiet') };
    const busy = { idleMark: 0, onIdleSweep: () => idle.push('busy') };
    s.add(quiet);
    s.add(busy);
    const stop = Date.now() + 600;
    while (Date.now() < stop) {
      busy.idleMark = s.tick;
      await sleep(20);
    }
    assert.deepEqual(idle, ['quiet', 'quiet'].slice(0, idle.length));
    assert.ok(idle.length >= 1 && idle.length <= 3, `reported ${idle.length} times in 600 ms with a 200 ms timeout`);
    assert.ok(!idle.includes('busy'));
    s.delete(quiet);
    s.delete(busy);
    assert.equal(s.size, 0);
  });

  test('not before the timeout', async () => {
    const s = new IdleSweeper(400);
    let fired = 0;
    const m = { idleMark: 0, onIdleSweep: () => fired++ };
    s.add(m);
    await sleep(250);
    assert.equal(fired, 0);
    await sleep(400);
    assert.equal(fired, 1);
    s.delete(m);
  });

  test('a member may remove itself from its callback', async () => {
    const s = new IdleSweeper(100);
    const gone: number[] = [];
    const ms = [0, 1, 2].map((i) => {
      const m = { idleMark: 0, onIdleSweep: () => { gone.push(i); s.delete(m); } };
      return m;
    });
    for (const m of ms) s.add(m);
    await sleep(300);
    assert.deepEqual(gone.sort(), [0, 1, 2]);
    assert.equal(s.size, 0);
  });

  test('one sweeper per timeout value', () => {
    assert.equal(idleSweeper(1234), idleSweeper(1234));
    assert.notEqual(idleSweeper(1234), idleSweeper(1235));
  });
});
