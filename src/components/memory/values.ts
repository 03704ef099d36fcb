/**
 * The value types of the memory store. Strings are Buffers (binary safe,
 * owned by the store: always a copy, never a view of a request buffer).
 * Hash fields and set members are latin1 strings, one char per byte, so any
 * byte sequence is a Map key and converts back unchanged.
 *
 * Hashes and sets are "dense": a Map from member to its slot, plus arrays
 * holding the members (and values) in slots 0..n-1, removal moving the last
 * slot into the hole. That gives O(1) random picks (SPOP, SRANDMEMBER,
 * HRANDFIELD) and a stateless SCAN cursor with redis' guarantee: walking
 * slots from the top down, an element present for the whole scan is always
 * returned, because removal only moves the top element (already visited,
 * or not yet reached) into a lower slot.
 */

export class DenseSet {
  /** member -> slot */
  readonly index = new Map<string, number>();
  /** slot -> member */
  members: string[] = [];

  get size(): number {
    return this.members.length;
  }

  has(m: string): boolean {
    return this.index.has(m);
  }

  /** Adds m; false if it was there. */
  add(m: string): boolean {
    if (this.index.has(m)) return false;
    this.index.set(m, this.members.length);
    this.members.push(m);
    return true;
  }

  /** Removes m; false if it was not there. */
  delete(m: string): boolean {
    const i = this.index.get(m);
    if (i === undefined) return false;
    this.removeAt(i);
    return true;
  }

  /** Removes the member in slot i; the last slot moves into it. */
  removeAt(i: number): void {
    const ms = this.members;
    const last = ms.length - 1;
    this.index.delete(ms[i]);
    if (i !== last) {
      const moved = ms[last];
      ms[i] = moved;
      this.index.set(moved, i);
      this.moveExtra(last, i);
    }
    ms.pop();
    this.popExtra();
  }

  /** Subclasses keep parallel arrays in step. */
  protected moveExtra(_from: number, _to: number): void {}
  protected popExtra(): void {}
}

export class SetValue extends DenseSet {}

export class HashValue extends DenseSet {
  /** slot -> value of the field in the same slot of `members` */
  values: Buffer[] = [];

  get(field: string): Buffer | undefined {
    const i = this.index.get(field);
    return i === undefined ? undefined : this.values[i];
  }

  /** Sets a field; true when it is new. */
  set(field: string, value: Buffer): boolean {
    const i = this.index.get(field);
    if (i !== undefined) {
      this.values[i] = value;
      return false;
    }
    this.index.set(field, this.members.length);
    this.members.push(field);
    this.values.push(value);
    return true;
  }

  protected override moveExtra(from: number, to: number): void {
    this.values[to] = this.values[from];
  }

  protected override popExtra(): void {
    this.values.pop();
  }
}

/**
 * A list as a ring buffer of Buffers: O(1) push and pop at both ends and
 * O(1) access by index (LINDEX, LSET, LRANGE windows). Capacity is a power
 * of two so an index wraps with a mask.
 */
export class ListValue {
  private ring: Array<Buffer | undefined>;
  private head = 0;
  private len = 0;
  private mask: number;

  constructor(capacity = 8) {
    let c = 8;
    while (c < capacity) c *= 2;
    this.ring = new Array<Buffer | undefined>(c).fill(undefined);
    this.mask = c - 1;
  }

  get length(): number {
    return this.len;
  }

  /** Element i counted from the head, 0 <= i < length. */
  at(i: number): Buffer {
    return this.ring[(this.head + i) & this.mask] as Buffer;
  }

  setAt(i: number, v: Buffer): void {
    this.ring[(this.head + i) & this.mask] = v;
  }

  private grow(): void {
    const old = this.ring;
    const n = old.length;
    const next = new Array<Buffer | undefined>(n * 2).fill(undefined);
    for (let i = 0; i < this.len; i++) next[i] = old[(this.head + i) & this.mask];
    this.ring = next;
    this.head = 0;
    this.mask = n * 2 - 1;
  }

  pushBack(v: Buffer): void {
    if (this.len === this.ring.length) this.grow();
    this.ring[(this.head + this.len) & this.mask] = v;
    this.len++;
  }

  pushFront(v: Buffer): void {
    if (this.len === this.ring.length) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.ring[this.head] = v;
    this.len++;
  }

  popFront(): Buffer | undefined {
    if (this.len === 0) return undefined;
    const v = this.ring[this.head];
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.len--;
    this.maybeShrink();
    return v;
  }

  popBack(): Buffer | undefined {
    if (this.len === 0) return undefined;
    const i = (this.head + this.len - 1) & this.mask;
    const v = this.ring[i];
    this.ring[i] = undefined;
    this.len--;
    this.maybeShrink();
    return v;
  }

  /** Give memory back after a large list drained (LPOP/LTRIM loops). */
  private maybeShrink(): void {
    const n = this.ring.length;
    if (n > 64 && this.len < n / 8) this.replace(this.toArray());
  }

  /** All elements, head first. */
  toArray(): Buffer[] {
    const out = new Array<Buffer>(this.len);
    for (let i = 0; i < this.len; i++) out[i] = this.ring[(this.head + i) & this.mask] as Buffer;
    return out;
  }

  /** Replace the content (LREM, LINSERT, LTRIM rebuild the list once). */
  replace(items: Buffer[]): void {
    let c = 8;
    while (c < items.length * 2) c *= 2;
    const ring = new Array<Buffer | undefined>(c).fill(undefined);
    for (let i = 0; i < items.length; i++) ring[i] = items[i];
    this.ring = ring;
    this.head = 0;
    this.len = items.length;
    this.mask = c - 1;
  }
}

export type Value = Buffer | HashValue | ListValue | SetValue;

/** TYPE's answer for a value. */
export function typeName(v: Value): 'string' | 'hash' | 'list' | 'set' {
  if (v instanceof Buffer) return 'string';
  if (v instanceof HashValue) return 'hash';
  if (v instanceof ListValue) return 'list';
  return 'set';
}
