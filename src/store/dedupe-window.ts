import { randomBytes } from 'node:crypto';
import { eachMessageId, markDuplicates } from './event-meta.ts';
import type { KeyList } from './ports.ts';

/**
 * Which messageIds were appended within the window, per workspace: the log's idempotency
 * memory. In memory for speed, filled from the log when the writer starts, so a restart
 * forgets nothing.
 *
 * Each workspace's ids live in open-addressing hash tables over typed arrays: a 95-bit
 * fingerprint of the id (a 128-bit hash, cut) picks its home slot and is kept, beside the time
 * it was received. Nothing in them is a JavaScript object, so the garbage collector has
 * nothing to trace however many millions of ids they hold (a `Map` of id strings cost the log
 * writer more in GC and look-ups than its SQLite inserts). Two different ids share a
 * fingerprint with odds of about n²/2^96 (10^-13 for 100 million ids in the window).
 *
 * An id received at or before `receivedAt − window` counts as absent; its slot is reused by a
 * new id whose probe passes it, and dropped when the table is replaced (so times are taken to
 * grow: an id claimed again with a time earlier than one already seen, after a clock step
 * back, may count as new where it was a duplicate by a few milliseconds), which happens when
 * three quarters of the slots are taken (20 bytes a slot: 27–80 bytes per id held). The new
 * table (twice the live ids, at least as big) takes new ids at once, and the old one's live
 * ids move into it a few slots per id claimed, looked up where they are meanwhile: rehashing
 * the whole table at once held the log writer 0.21–0.64 s at 3 million ids on the benchmark
 * machine; the replacement's longest pause is its count of live ids and the allocation (30–41
 * ms at 3–8 million), for a tenth more time per claim on average (two tables to look in while
 * ids move: 72.7 against 66.4 µs a batch of 100 claimed into 8 million). The start-up load,
 * which nothing waits on id by id, still rehashes at once. A table grows to MAX_SLOTS at most
 * (6.3 million ids); past that, new ids go to a new table (a generation), each look-up checks
 * the generations newest first, and a generation whose newest id has expired is dropped whole.
 */
export class DedupeWindow {
  readonly #windowMs: number;
  readonly #initialSlots: number;
  readonly #maxSlots: number;
  readonly #sets = new Map<string, IdSet>();

  /** `initialSlots`, `maxSlots`: a table's first and largest sizes (powers of two); tests use small ones. */
  constructor(windowMs: number, initialSlots = 1024, maxSlots = MAX_SLOTS) {
    for (const n of [initialSlots, maxSlots]) if (!(n >= 1 && (n & (n - 1)) === 0)) throw new RangeError('table sizes must be powers of two');
    this.#windowMs = windowMs;
    this.#initialSlots = initialSlots;
    this.#maxSlots = Math.max(initialSlots, maxSlots);
  }

  #set(workspaceId: string): IdSet {
    let set = this.#sets.get(workspaceId);
    if (!set) this.#sets.set(workspaceId, (set = new IdSet(this.#initialSlots, this.#maxSlots)));
    return set;
  }

  /** True when the id is new in the window (and is now claimed); false for a duplicate. */
  claim(workspaceId: string, messageId: string, receivedAt: number): boolean {
    return this.#set(workspaceId).claim(messageId, 0, messageId.length, receivedAt, receivedAt - this.#windowMs);
  }

  /** Forgets a claim whose events were not committed, so the client's retry is accepted. */
  release(workspaceId: string, messageId: string): void {
    this.#sets.get(workspaceId)?.release(messageId, 0, messageId.length);
  }

  /** How many ids the tables hold for a workspace (expired ones included until a rebuild or prune drops them). */
  size(workspaceId: string): number {
    return this.#sets.get(workspaceId)?.held() ?? 0;
  }

  /** How many tables (generations) hold a workspace's ids. */
  generations(workspaceId: string): number {
    return this.#sets.get(workspaceId)?.tables.length ?? 0;
  }

  /**
   * Claims the ids of one log entry: `keys` (see LogEntry.dedupeKeys), else the messageIds in
   * its verdicts (`verdicts` gives their text; called only when needed). Returns the verdicts'
   * text with duplicates marked (`marked`, only when there are some), the duplicate indexes, and
   * the indexes it claimed (for `releaseEntry`).
   */
  claimEntry(workspaceId: string, receivedAt: number, verdicts: () => string, keys?: KeyList): { marked: string | undefined; duplicates: number[]; claimed: number[] } {
    const set = this.#set(workspaceId);
    const cutoff = receivedAt - this.#windowMs;
    set.dropExpired(cutoff);
    const duplicates: number[] = [];
    const claimed: number[] = [];
    let i = 0;
    eachKey(verdicts, keys, (text, from, to) => {
      if (set.claim(text, from, to, receivedAt, cutoff)) claimed.push(i++);
      else duplicates.push(i++);
    });
    return { marked: duplicates.length === 0 ? undefined : markDuplicates(verdicts(), duplicates), duplicates, claimed };
  }

  /** Forgets what `claimEntry` claimed for an entry that was not committed (same verdicts and keys). */
  releaseEntry(workspaceId: string, verdicts: () => string, keys: KeyList | undefined, claimed: readonly number[]): void {
    const set = this.#sets.get(workspaceId);
    if (!set || claimed.length === 0) return;
    const release = new Set(claimed);
    let i = 0;
    eachKey(verdicts, keys, (text, from, to) => {
      if (release.has(i++)) set.release(text, from, to);
    });
  }

  /**
   * Remembers what a stored entry claimed when it was appended (the start-up load, oldest entry
   * first): the ids of its events not marked duplicate, from its verdicts' text; how many. Each
   * id takes the entry's time, so the newest entry holding an id (the one that claimed it last)
   * is the one that counts.
   */
  replay(workspaceId: string, receivedAt: number, verdicts: string): number {
    const set = this.#set(workspaceId);
    const cutoff = receivedAt - this.#windowMs;
    set.dropExpired(cutoff);
    let ids = 0;
    eachId(verdicts, (text, from, to, duplicate) => {
      if (duplicate) return;
      set.remember(text, from, to, receivedAt, cutoff);
      ids++;
    });
    return ids;
  }

  /** Drops the ids expired at `now` (a rebuild of each table: O(slots)). */
  prune(now: number): void {
    for (const set of this.#sets.values()) set.prune(now - this.#windowMs);
  }
}

/** Each key of an entry, as a range of some string: from `keys`, or from the verdicts. */
function eachKey(verdicts: () => string, keys: KeyList | undefined, visit: (text: string, from: number, to: number) => void): void {
  if (!keys) return eachId(verdicts(), visit);
  for (let i = 0, from = 0; i < keys.ends.length; from = keys.ends[i++]!) visit(keys.text, from, keys.ends[i]!);
}

/**
 * Each messageId in the verdicts, as a range of some string: the verdicts themselves where the
 * id's JSON literal has no escape (then it reads as the id), else the id decoded.
 */
function eachId(meta: string, visit: (text: string, from: number, to: number, duplicate: boolean) => void): void {
  eachMessageId(meta, (text, from, to, duplicate) => {
    for (let i = from; i < to; i++) {
      if (text.charCodeAt(i) !== BACKSLASH) continue;
      const id = JSON.parse(text.slice(from - 1, to + 1)) as string;
      return visit(id, 0, id.length, duplicate);
    }
    visit(text, from, to, duplicate);
  });
}

const BACKSLASH = 0x5c;

/** Where a released id's time is set: expired at any cutoff. */
const RELEASED = -Infinity;
/** Words of fingerprint per slot. */
const WORDS = 3;
/** A table is replaced when more slots than this are taken (released and expired ones included). */
const MAX_LOAD = 0.75;
/** Slots of a replaced table whose live ids move into its successor per id claimed. */
const DRAIN_SLOTS = 32;
/** Smaller tables are rebuilt in place at once (microseconds); bigger ones replaced and drained. */
const MIN_DRAINED = 16;
/** The largest table: 8 M slots (160 MB, 6.3 million ids); then a new generation starts. */
const MAX_SLOTS = 1 << 23;

/** The size, doubling from `from` (a power of two), that holds twice `live` ids, or `maxSlots`. */
function slotsFor(live: number, from: number, maxSlots: number): number {
  let slots = from;
  while (slots < live * 2 && slots < maxSlots) slots *= 2;
  return slots;
}

/** The fingerprint of the last id hashed (word 0 made odd, so that 0 marks an empty slot). */
const hashed = new Uint32Array(WORDS);
/** A fingerprint's home slot, before the table's mask. */
const home = (first: number) => first >>> 1;
/** Per process: the table is never stored, and a secret seed keeps home slots unguessable. */
const SEED = randomBytes(4).readUInt32LE(0);

/**
 * A workspace's ids: one table, or several generations of them once one reached its largest
 * size (oldest first; only the newest takes new ids).
 */
class IdSet {
  tables: IdTable[];
  readonly #maxSlots: number;
  /**
   * The table the newest replaced when it grew, looked up meanwhile like an older generation:
   * each claim moves the live ids of its next DRAIN_SLOTS slots into the newest, so growing
   * never holds the writer for a whole table's rehash. `#cursor`: the next slot to move.
   */
  #draining: IdTable | undefined;
  #cursor = 0;
  /** The cutoff when it began: ids expired then are not moved, even if the clock goes back. */
  #drainCutoff = -Infinity;

  constructor(initialSlots: number, maxSlots: number) {
    this.tables = [new IdTable(initialSlots)];
    this.#maxSlots = maxSlots;
  }

  held(): number {
    return this.tables.reduce((n, t) => n + t.held, 0);
  }

  /** Drops the oldest generations whose every id has expired (never the newest). */
  dropExpired(cutoff: number): void {
    while (this.tables.length > 1 && this.tables[0]!.newest <= cutoff) {
      if (this.tables.shift() === this.#draining) this.#draining = undefined;
    }
  }

  /**
   * Moves the live ids of the draining table's next `slots` slots into the newest (through the
   * shared `hashed`: never between a hash() and its use). An id is held by one table only
   * (#record moves one claimed again), so each goes where `find` says it is absent.
   */
  #drain(slots: number, cutoff: number): void {
    const from = this.#draining!;
    const into = this.tables[this.tables.length - 1]!;
    const end = Math.min(from.times.length, this.#cursor + slots);
    const floor = Math.max(cutoff, this.#drainCutoff);
    for (let slot = this.#cursor; slot < end; slot++) {
      const k = slot * WORDS;
      if (from.keys[k] === 0 || from.times[slot]! <= floor) continue;
      hashed[0] = from.keys[k]!;
      hashed[1] = from.keys[k + 1]!;
      hashed[2] = from.keys[k + 2]!;
      const found = into.find(cutoff);
      if (found < 0) into.put(~found, from.times[slot]!);
      from.forget(slot);
    }
    this.#cursor = end;
    if (end < from.times.length) return;
    this.tables.splice(this.tables.indexOf(from), 1);
    this.#draining = undefined;
  }

  /**
   * The id hashed last: in the newest table, its slot, or the complement of where it would go;
   * then in older ones, where it is found only.
   */
  #locate(cutoff: number): { table: IdTable; slot: number } {
    const newest = this.tables[this.tables.length - 1]!;
    const slot = newest.find(cutoff);
    if (slot >= 0) return { table: newest, slot };
    for (let g = this.tables.length - 2; g >= 0; g--) {
      const older = this.tables[g]!.find(cutoff);
      if (older >= 0) return { table: this.tables[g]!, slot: older };
    }
    return { table: newest, slot };
  }

  claim(text: string, from: number, to: number, at: number, cutoff: number): boolean {
    if (this.#draining) this.#drain(DRAIN_SLOTS, cutoff);
    hash(text, from, to);
    const { table, slot } = this.#locate(cutoff);
    if (slot >= 0 && table.times[slot]! > cutoff) return false;
    this.#record(table, slot, at, cutoff, false);
    return true;
  }

  /**
   * Records the id as received at `at`, whether or not it was held (the start-up load, which
   * nothing waits on id by id: a full table is rehashed at once, the cheaper way in all). It
   * starts no move, and runs before any claim does, so it has none to advance.
   */
  remember(text: string, from: number, to: number, at: number, cutoff: number): void {
    hash(text, from, to);
    const { table, slot } = this.#locate(cutoff);
    this.#record(table, slot, at, cutoff, true);
  }

  /**
   * Puts the id hashed last where #locate found it; an id held by an older generation moves to
   * the newest. A full table is replaced and drained, or with `atOnce` rebuilt in place.
   */
  #record(table: IdTable, slot: number, at: number, cutoff: number, atOnce: boolean): void {
    const newest = this.tables[this.tables.length - 1]!;
    if (slot >= 0 && table === newest) return newest.put(slot, at);
    if (slot >= 0) {
      table.forget(slot);
      slot = newest.find(cutoff);
    }
    const to = ~slot;
    if (newest.keys[to * WORDS] !== 0 || newest.used + 1 <= newest.slots() * MAX_LOAD) return newest.put(to, at);
    const live = newest.live(cutoff);
    if (newest.slots() === this.#maxSlots && live * 2 > newest.slots()) {
      // At the largest size and more than half live: a new generation takes new ids.
      const next = new IdTable(this.#maxSlots);
      this.tables.push(next);
      return next.put(~next.find(cutoff), at);
    }
    const slots = slotsFor(live, newest.slots(), this.#maxSlots);
    if (atOnce || slots < MIN_DRAINED) {
      newest.rebuild(cutoff, this.#maxSlots, live);
      return newest.put(~newest.find(cutoff), at);
    }
    // A table at least as big takes new ids, and the live ones move into it claim by claim.
    // With S ≥ 16 slots, at least the old table's and twice the live ids, the move (32 old slots
    // a claim: at most S/32 claims, one new id each) and the ids it moves (live now, at most
    // S/2) fill at most 1 + S/32 + S/2 < 3S/4 of it: it ends before the new table is full in
    // turn. (Were one replaced mid-move all the same, the table it was emptying would stay an
    // older generation, looked up until its ids expire: nothing would be forgotten.)
    const next = new IdTable(slots);
    this.tables.push(next);
    this.#draining = newest;
    this.#cursor = 0;
    this.#drainCutoff = cutoff;
    next.put(~next.find(cutoff), at);
  }

  release(text: string, from: number, to: number): void {
    hash(text, from, to);
    for (let g = this.tables.length - 1; g >= 0; g--) {
      const slot = this.tables[g]!.find(RELEASED);
      if (slot >= 0) return this.tables[g]!.forget(slot);
    }
  }

  prune(cutoff: number): void {
    if (this.#draining) this.#drain(Infinity, cutoff);
    for (const table of this.tables) table.rebuild(cutoff, this.#maxSlots);
    this.tables = this.tables.filter((t, i) => t.held > 0 || i === this.tables.length - 1);
  }
}

/**
 * One table of ids. `keys` holds each slot's fingerprint, `times` when the id was received.
 * Linear probing: a slot is never emptied once taken (that would cut other ids' probe chains);
 * released and expired ids are reused in place or dropped by a rebuild.
 */
class IdTable {
  keys: Uint32Array;
  times: Float64Array;
  mask: number;
  /** Slots taken, whatever they hold. */
  used = 0;
  /** Slots holding an id that was not released (expired ones included). */
  held = 0;
  /** The latest time put in (the table is all expired once the cutoff passes it). */
  newest = -Infinity;

  constructor(slots: number) {
    this.keys = new Uint32Array(slots * WORDS);
    this.times = new Float64Array(slots);
    this.mask = slots - 1;
  }

  slots(): number {
    return this.mask + 1;
  }

  /**
   * The slot holding the id hashed last, or, when it is absent, the complement (`~slot`) of the
   * slot it should take: the first released or expired one on its probe path, else the empty
   * one that ends the path.
   */
  find(cutoff: number): number {
    const { keys, times, mask } = this;
    const a = hashed[0]!;
    const b = hashed[1]!;
    const c = hashed[2]!;
    let reusable = -1;
    for (let slot = home(a) & mask; ; slot = (slot + 1) & mask) {
      const k = slot * WORDS;
      const first = keys[k]!;
      if (first === 0) return ~(reusable >= 0 ? reusable : slot);
      if (first === a && keys[k + 1] === b && keys[k + 2] === c) return slot;
      if (reusable < 0 && times[slot]! <= cutoff) reusable = slot;
    }
  }

  /** Puts the id hashed last in `slot` (its own, or one `find` offered), received at `at`. */
  put(slot: number, at: number): void {
    const k = slot * WORDS;
    if (this.keys[k] === 0) this.used++;
    if (this.keys[k] === 0 || this.times[slot] === RELEASED) this.held++;
    this.keys.set(hashed, k);
    this.times[slot] = at;
    if (at > this.newest) this.newest = at;
  }

  /** Marks the id in `slot` released: absent from now on. */
  forget(slot: number): void {
    if (this.times[slot] === RELEASED) return;
    this.times[slot] = RELEASED;
    this.held--;
  }

  /** How many ids were received after `cutoff`. */
  live(cutoff: number): number {
    let live = 0;
    for (let slot = 0; slot < this.times.length; slot++) if (this.keys[slot * WORDS] !== 0 && this.times[slot]! > cutoff) live++;
    return live;
  }

  /** Keeps the `live` ids received after `cutoff`, in a table sized for twice as many (up to `maxSlots`). */
  rebuild(cutoff: number, maxSlots: number, live = this.live(cutoff)): void {
    const { keys, times } = this;
    const slots = slotsFor(live, Math.min(16, maxSlots), maxSlots);
    this.keys = new Uint32Array(slots * WORDS);
    this.times = new Float64Array(slots);
    this.mask = slots - 1;
    this.used = this.held = live;
    const into = this.keys;
    const mask = this.mask;
    for (let slot = 0; slot < times.length; slot++) {
      const k = slot * WORDS;
      const first = keys[k]!;
      if (first === 0 || times[slot]! <= cutoff) continue;
      let to = home(first) & mask;
      while (into[to * WORDS] !== 0) to = (to + 1) & mask;
      const t = to * WORDS;
      into[t] = first;
      into[t + 1] = keys[k + 1]!;
      into[t + 2] = keys[k + 2]!;
      this.times[to] = times[slot]!;
    }
  }
}

/**
 * The fingerprint of the UTF-16 code units of `s` from `from` to `to` into `hashed`: MurmurHash3
 * x86_128's rounds and finaliser over pairs of code units (the last group padded with zeros, the
 * length mixed in at the end), three of its four words kept.
 */
function hash(s: string, from: number, to: number): void {
  const n = to - from;
  let h1 = SEED;
  let h2 = SEED;
  let h3 = SEED;
  let h4 = SEED;
  for (let i = from; i < to; i += 8) {
    let k1 = unit(s, i, to) | (unit(s, i + 1, to) << 16);
    let k2 = unit(s, i + 2, to) | (unit(s, i + 3, to) << 16);
    let k3 = unit(s, i + 4, to) | (unit(s, i + 5, to) << 16);
    let k4 = unit(s, i + 6, to) | (unit(s, i + 7, to) << 16);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 = (Math.imul(rotl(h1 ^ k1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 = (Math.imul(rotl(h2 ^ k2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 = (Math.imul(rotl(h3 ^ k3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 = (Math.imul(rotl(h4 ^ k4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  h1 ^= n;
  h2 ^= n;
  h3 ^= n;
  h4 ^= n;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  hashed[0] = (h2 + h1) | 1;
  hashed[1] = h3 + h1;
  hashed[2] = h4 + h1;
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;
const unit = (s: string, i: number, end: number) => (i < end ? s.charCodeAt(i) : 0);
const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
