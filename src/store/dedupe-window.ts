import { randomBytes } from 'node:crypto';
import { eachMessageId, markDuplicates } from './event-meta.ts';
import type { KeyList } from './ports.ts';

/**
 * Which messageIds were appended within the window, per workspace: the log's idempotency
 * memory. In memory for speed, filled from the log when the writer starts, so a restart
 * forgets nothing.
 *
 * Each workspace's ids live in an open-addressing hash table over typed arrays: a 96-bit
 * fingerprint of the id (a 128-bit hash, cut) picks its home slot and is kept, beside the time
 * it was received. Nothing in it is a JavaScript object, so the garbage collector has
 * nothing to trace however many millions of ids it holds (a `Map` of id strings cost the log
 * writer more in GC and look-ups than its SQLite inserts). Two different ids share a
 * fingerprint with odds of about n²/2^96 (10^-13 for 100 million ids in the window).
 *
 * An id received at or before `receivedAt − window` counts as absent; its slot is reused by a
 * new id whose probe passes it, and dropped when the table is rebuilt, which happens when
 * three quarters of the slots are taken (20 bytes a slot: 27–80 bytes per id held).
 */
export class DedupeWindow {
  readonly #windowMs: number;
  readonly #initialSlots: number;
  readonly #tables = new Map<string, IdTable>();

  /** `initialSlots`: a new workspace's table size (a power of two); tests use small ones. */
  constructor(windowMs: number, initialSlots = 1024) {
    if (!(initialSlots >= 1 && (initialSlots & (initialSlots - 1)) === 0)) throw new RangeError('initialSlots must be a power of two');
    this.#windowMs = windowMs;
    this.#initialSlots = initialSlots;
  }

  #table(workspaceId: string): IdTable {
    let table = this.#tables.get(workspaceId);
    if (!table) this.#tables.set(workspaceId, (table = new IdTable(this.#initialSlots)));
    return table;
  }

  /** True when the id is new in the window (and is now claimed); false for a duplicate. */
  claim(workspaceId: string, messageId: string, receivedAt: number): boolean {
    return this.#table(workspaceId).claim(messageId, 0, messageId.length, receivedAt, receivedAt - this.#windowMs);
  }

  /** Forgets a claim whose events were not committed, so the client's retry is accepted. */
  release(workspaceId: string, messageId: string): void {
    this.#tables.get(workspaceId)?.release(messageId, 0, messageId.length);
  }

  /** How many ids the table holds for a workspace (expired ones included until a rebuild or prune drops them). */
  size(workspaceId: string): number {
    return this.#tables.get(workspaceId)?.held ?? 0;
  }

  /**
   * Claims the ids of one log entry: `keys` (see LogEntry.dedupeKeys), else the messageIds in
   * its verdicts. Returns the new meta (with duplicates marked, or the same
   * string when there are none), the duplicate indexes, and the indexes it claimed (for `releaseEntry`).
   */
  claimEntry(workspaceId: string, receivedAt: number, meta: string, keys?: KeyList): { meta: string; duplicates: number[]; claimed: number[] } {
    const table = this.#table(workspaceId);
    const cutoff = receivedAt - this.#windowMs;
    const duplicates: number[] = [];
    const claimed: number[] = [];
    let i = 0;
    eachKey(meta, keys, (text, from, to) => {
      if (table.claim(text, from, to, receivedAt, cutoff)) claimed.push(i++);
      else duplicates.push(i++);
    });
    return { meta: duplicates.length === 0 ? meta : markDuplicates(meta, duplicates), duplicates, claimed };
  }

  /** Forgets what `claimEntry` claimed for an entry that was not committed (same meta and keys). */
  releaseEntry(workspaceId: string, meta: string, keys: KeyList | undefined, claimed: readonly number[]): void {
    const table = this.#tables.get(workspaceId);
    if (!table || claimed.length === 0) return;
    const release = new Set(claimed);
    let i = 0;
    eachKey(meta, keys, (text, from, to) => {
      if (release.has(i++)) table.release(text, from, to);
    });
  }

  /**
   * Remembers what a stored entry claimed when it was appended (the start-up load, oldest entry
   * first): the ids of its events not marked duplicate; how many. Each id takes the entry's
   * time, so the newest entry holding an id (the one that claimed it last) is the one that counts.
   */
  replay(workspaceId: string, receivedAt: number, meta: string): number {
    const table = this.#table(workspaceId);
    const cutoff = receivedAt - this.#windowMs;
    let ids = 0;
    eachId(meta, (text, from, to, duplicate) => {
      if (duplicate) return;
      table.remember(text, from, to, receivedAt, cutoff);
      ids++;
    });
    return ids;
  }

  /** Drops the ids expired at `now` (a rebuild of each table: O(slots)). */
  prune(now: number): void {
    for (const table of this.#tables.values()) table.rebuild(now - this.#windowMs);
  }
}

/** Each key of an entry, as a range of some string: from `keys`, or from the verdicts. */
function eachKey(meta: string, keys: KeyList | undefined, visit: (text: string, from: number, to: number) => void): void {
  if (!keys) return eachId(meta, visit);
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
/** Rebuilt when more slots than this are taken (released and expired ones included). */
const MAX_LOAD = 0.75;

/** The fingerprint of the last id hashed (word 0 made odd, so that 0 marks an empty slot). */
const hashed = new Uint32Array(WORDS);
/** A fingerprint's home slot, before the table's mask. */
const home = (first: number) => first >>> 1;
/** Per process: the table is never stored, and a secret seed keeps home slots unguessable. */
const SEED = randomBytes(4).readUInt32LE(0);

/**
 * One workspace's ids. `keys` holds each slot's fingerprint, `times` when the id was received. Linear probing: a slot is never emptied once
 * taken (that would cut other ids' probe chains); released and expired ids are reused in place
 * or dropped by a rebuild.
 */
class IdTable {
  keys: Uint32Array;
  times: Float64Array;
  mask: number;
  /** Slots taken, whatever they hold. */
  used = 0;
  /** Slots holding an id that was not released (expired ones included). */
  held = 0;

  constructor(slots: number) {
    this.keys = new Uint32Array(slots * WORDS);
    this.times = new Float64Array(slots);
    this.mask = slots - 1;
  }

  /**
   * The slot holding the id hashed last, or, when it is absent, the complement (`~slot`) of the
   * slot it should take: the first released or expired one on its probe path, else the empty
   * one that ends the path.
   */
  #find(cutoff: number): number {
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

  #put(slot: number, at: number): void {
    const k = slot * WORDS;
    if (this.keys[k] === 0) this.used++;
    if (this.keys[k] === 0 || this.times[slot] === RELEASED) this.held++;
    this.keys.set(hashed, k);
    this.times[slot] = at;
  }

  claim(text: string, from: number, to: number, at: number, cutoff: number): boolean {
    hash(text, from, to);
    const found = this.#find(cutoff);
    if (found >= 0) {
      if (this.times[found]! > cutoff) return false;
      this.#put(found, at);
      return true;
    }
    this.#insert(~found, at, cutoff);
    return true;
  }

  /** Records the id as received at `at`, whether or not it was held. */
  remember(text: string, from: number, to: number, at: number, cutoff: number): void {
    hash(text, from, to);
    const found = this.#find(cutoff);
    if (found >= 0) this.#put(found, at);
    else this.#insert(~found, at, cutoff);
  }

  #insert(slot: number, at: number, cutoff: number): void {
    if (this.keys[slot * WORDS] === 0 && this.used + 1 > (this.mask + 1) * MAX_LOAD) {
      this.rebuild(cutoff);
      slot = ~this.#find(cutoff);
    }
    this.#put(slot, at);
  }

  release(text: string, from: number, to: number): void {
    hash(text, from, to);
    const found = this.#find(RELEASED);
    if (found < 0 || this.times[found] === RELEASED) return;
    this.times[found] = RELEASED;
    this.held--;
  }

  /** Keeps the ids received after `cutoff`, in a table sized for twice as many as there are then. */
  rebuild(cutoff: number): void {
    const { keys, times } = this;
    let live = 0;
    for (let slot = 0; slot < times.length; slot++) if (keys[slot * WORDS] !== 0 && times[slot]! > cutoff) live++;
    let slots = 16;
    while (slots < live * 2) slots *= 2;
    this.keys = new Uint32Array(slots * WORDS);
    this.times = new Float64Array(slots);
    this.mask = slots - 1;
    this.used = this.held = live;
    for (let slot = 0; slot < times.length; slot++) {
      const k = slot * WORDS;
      if (keys[k] === 0 || times[slot]! <= cutoff) continue;
      let to = home(keys[k]!) & this.mask;
      while (this.keys[to * WORDS] !== 0) to = (to + 1) & this.mask;
      this.keys.set(keys.subarray(k, k + WORDS), to * WORDS);
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
