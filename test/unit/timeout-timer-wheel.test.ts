/**
 * The timer wheel on a manual clock (autoTick off, tick() called by the
 * test), then once on the real clock with its own interval.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CallbackTask, TimerWheel } from '../../src/util/timer-wheel';

function manual(start = 0, resolutionMs = 10) {
  let now = start;
  const wheel = new TimerWheel({ resolutionMs, clock: () => now, autoTick: false });
  return {
    wheel,
    at(t: number) {
      now = t;
      wheel.tick();
    },
  };
}

describe('TimerWheel', () => {
  test('a task fires on the first tick at or after its time, never before', () => {
    const { wheel, at } = manual();
    const fired: number[] = [];
    wheel.schedule(new CallbackTask((n) => fired.push(n)), 25);
    at(24);
    at(29.9);
    assert.deepEqual(fired, []);
    at(30);
    assert.deepEqual(fired, [30]);
    assert.equal(wheel.pending, 0);
  });

  test('a task exactly on a bucket edge fires at that edge', () => {
    const { wheel, at } = manual();
    const fired: number[] = [];
    wheel.schedule(new CallbackTask((n) => fired.push(n)), 20);
    at(19.99);
    assert.deepEqual(fired, []);
    at(20);
    assert.deepEqual(fired, [20]);
  });

  test('a time already past fires on the next tick, not synchronously', () => {
    const { wheel, at } = manual(100);
    let fired = 0;
    wheel.schedule(
      new CallbackTask(() => fired++),
      50,
    );
    assert.equal(fired, 0);
    assert.equal(wheel.pending, 1);
    at(100);
    assert.equal(fired, 1);
  });

  test('tasks fire in time order across buckets, all due ones in one tick', () => {
    const { wheel, at } = manual();
    const fired: string[] = [];
    for (const [name, t] of [
      ['c', 95],
      ['a', 12],
      ['b', 41],
      ['d', 300],
    ] as const) {
      wheel.schedule(new CallbackTask(() => fired.push(name)), t);
    }
    at(100);
    assert.deepEqual(fired, ['a', 'b', 'c']);
    at(300);
    assert.deepEqual(fired, ['a', 'b', 'c', 'd']);
  });

  test('cancel removes a task (swap-remove keeps the others intact)', () => {
    const { wheel, at } = manual();
    const fired = new Set<number>();
    const tasks = Array.from({ length: 100 }, (_, i) => new CallbackTask(() => fired.add(i)));
    for (const t of tasks) wheel.schedule(t, 15);
    const cancelled = new Set<number>();
    for (let i = 0; i < 100; i += 3) {
      assert.equal(wheel.cancel(tasks[i]!), true);
      cancelled.add(i);
    }
    assert.equal(wheel.cancel(tasks[0]!), false, 'a second cancel finds nothing');
    assert.equal(wheel.pending, 100 - cancelled.size);
    at(20);
    for (let i = 0; i < 100; i++) assert.equal(fired.has(i), !cancelled.has(i), `task ${i}`);
    assert.equal(wheel.pending, 0);
  });

  test('schedules and cancels spread over buckets, in request order (the cached buckets), keep every survivor and no empty bucket', () => {
    const { wheel, at } = manual();
    const fired: string[] = [];
    const tasks: CallbackTask[] = [];
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 5; i++) {
        const name = `${b}.${i}`;
        const t = new CallbackTask(() => fired.push(name));
        wheel.schedule(t, 100 + b * 10 + i);
        tasks.push(t);
      }
    }
    // Cancel in the order they were scheduled, all but one per bucket; bucket 1 completely.
    for (const [i, t] of tasks.entries()) if (i % 5 !== 4 || i === 9) assert.equal(wheel.cancel(t), true);
    assert.equal(wheel.cancel(tasks[0]!), false, 'a second cancel finds nothing');
    assert.equal(wheel.pending, 2);
    // A bucket emptied by cancels and then used again.
    const again = new CallbackTask(() => fired.push('again'));
    wheel.schedule(again, 111);
    assert.equal(wheel.pending, 3);
    at(200);
    assert.deepEqual(fired, ['0.4', 'again', '2.4']);
    assert.equal(wheel.pending, 0);
    // Empty again: a new schedule in a bucket used before works from scratch.
    wheel.schedule(new CallbackTask(() => fired.push('late')), 205);
    at(210);
    assert.deepEqual(fired.at(-1), 'late');
  });

  test('a task cancelled by another task of the same bucket does not fire', () => {
    const { wheel, at } = manual();
    const fired: string[] = [];
    const b = new CallbackTask(() => fired.push('b'));
    const a = new CallbackTask(() => {
      fired.push('a');
      wheel.cancel(b);
    });
    wheel.schedule(a, 5);
    wheel.schedule(b, 6);
    at(10);
    assert.deepEqual(fired, ['a']);
  });

  test('a task scheduled while firing waits for a later tick, even when already due', () => {
    const { wheel, at } = manual();
    const fired: string[] = [];
    const again = new CallbackTask(() => fired.push('again'));
    wheel.schedule(
      new CallbackTask(() => {
        fired.push('first');
        wheel.schedule(again, 0);
      }),
      5,
    );
    at(10);
    assert.deepEqual(fired, ['first']);
    at(19);
    assert.deepEqual(fired, ['first']);
    at(20);
    assert.deepEqual(fired, ['first', 'again']);
  });

  test('rescheduling moves a task', () => {
    const { wheel, at } = manual();
    let fired = 0;
    const t = new CallbackTask(() => fired++);
    wheel.schedule(t, 10);
    wheel.schedule(t, 50);
    assert.equal(wheel.pending, 1);
    at(20);
    assert.equal(fired, 0);
    at(50);
    assert.equal(fired, 1);
  });

  test('after a long stall every due task fires once, in order', () => {
    const { wheel, at } = manual();
    const fired: number[] = [];
    for (const t of [3_000_000, 7, 1_000_000]) wheel.schedule(new CallbackTask(() => fired.push(t)), t);
    at(2_000_000);
    assert.deepEqual(fired, [7, 1_000_000]);
    at(3_000_000);
    assert.deepEqual(fired, [7, 1_000_000, 3_000_000]);
  });

  test('a throwing task does not stop the others', () => {
    const { wheel, at } = manual();
    let ok = 0;
    wheel.schedule(
      new CallbackTask(() => {
        throw new Error('boom');
      }),
      5,
    );
    wheel.schedule(new CallbackTask(() => ok++), 5);
    at(10);
    assert.equal(ok, 1);
  });

  test('on the real clock: one interval while tasks are pending, stopped when empty', async () => {
    const wheel = new TimerWheel({ resolutionMs: 5 });
    assert.equal(wheel.ticking, false);
    const start = performance.now();
    const firedAt = await new Promise<number>((resolve, reject) => {
      const guard = setTimeout(() => reject(new Error('the task did not fire within 5 s')), 5000);
      wheel.scheduleIn(
        new CallbackTask((n) => {
          clearTimeout(guard);
          resolve(n);
        }),
        20,
      );
      assert.equal(wheel.ticking, true);
    });
    assert.ok(firedAt - start >= 20, `fired after ${firedAt - start} ms, before its time`);
    // The tick that fired the last task stops the interval.
    assert.equal(wheel.ticking, false);
    wheel.clear();
  });
});
