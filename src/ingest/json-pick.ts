/**
 * One pass over a request's JSON bytes that checks them exactly as JSON.parse would (RFC 8259)
 * and builds only what ingest reads: the members of the event objects (the top-level object, and
 * each object in its `batch` array) that events are judged on. Everything else (an event's
 * properties, context, traits: most of the bytes) is checked and skipped, not built. JSON.parse
 * made every object and string of the body, for checks that look at a dozen fields per event,
 * and was half of an ingest thread's time.
 *
 * A picked member holds what JSON.parse would give for strings, numbers, booleans and null; an
 * object or an array stands as OBJECT or ARRAY, empty and frozen (the checks only ask whether a
 * field is an object), except an event's properties and traits, which stand as Unparsed or
 * UnparsedArray (where their checked bytes are) until giveValues() parses them for a plan;
 * an absent member is undefined. Repeated keys keep the last, as JSON.parse does.
 */
import { TandemError } from '../errors.ts';

export const OBJECT: Readonly<Record<string, never>> = Object.freeze({});
export const ARRAY: readonly never[] = Object.freeze([]);

/**
 * An event's properties or traits object as the pass leaves it: checked, not built (an object,
 * so the checks see one), with where its bytes are for giveValues().
 */
export class Unparsed {
  readonly start: number;
  readonly end: number;
  constructor(start: number, end: number) {
    this.start = start;
    this.end = end;
  }
}

/** The same for an array there (an array, so the checks see one, empty). */
export class UnparsedArray extends Array<never> {
  start = 0;
  end = 0;
}

/**
 * The members of an event object (or a batch's envelope) that ingest reads. One class, so every
 * picked object has the same shape and the checks read them at a fixed place.
 */
export class PickedObject {
  type: unknown = undefined;
  messageId: unknown = undefined;
  userId: unknown = undefined;
  anonymousId: unknown = undefined;
  properties: unknown = undefined;
  traits: unknown = undefined;
  context: unknown = undefined;
  integrations: unknown = undefined;
  event: unknown = undefined;
  name: unknown = undefined;
  groupId: unknown = undefined;
  previousId: unknown = undefined;
  timestamp: unknown = undefined;
  originalTimestamp: unknown = undefined;
  sentAt: unknown = undefined;
  writeKey: unknown = undefined;
  /** In a batch's envelope: the items, each a PickedObject or what value() gives. */
  batch: unknown = undefined;
}

export type PickedKey = keyof PickedObject;
export const PICKED_KEYS: readonly PickedKey[] = Object.keys(new PickedObject()) as PickedKey[];
const BATCH = PICKED_KEYS.indexOf('batch');
const PROPERTIES = PICKED_KEYS.indexOf('properties');
const TRAITS = PICKED_KEYS.indexOf('traits');

/** What a pass found: the top-level value (a PickedObject if an object) and, for a batch, each item's size in bytes. */
export type Picked = { value: unknown; itemSpans: number[] };

/** Picked keys by byte length, as bytes with their index, for a match without making a string of every key. */
const BY_LENGTH: Array<Array<{ index: number; bytes: Uint8Array }> | undefined> = [];
PICKED_KEYS.forEach((key, index) => (BY_LENGTH[key.length] ??= []).push({ index, bytes: Buffer.from(key, 'latin1') }));

/** Sets the member at `index` of PICKED_KEYS: a named store each, not a keyed one. */
function setMember(target: PickedObject, index: number, v: unknown): void {
  switch (index) {
    case 0: target.type = v; break;
    case 1: target.messageId = v; break;
    case 2: target.userId = v; break;
    case 3: target.anonymousId = v; break;
    case 4: target.properties = v; break;
    case 5: target.traits = v; break;
    case 6: target.context = v; break;
    case 7: target.integrations = v; break;
    case 8: target.event = v; break;
    case 9: target.name = v; break;
    case 10: target.groupId = v; break;
    case 11: target.previousId = v; break;
    case 12: target.timestamp = v; break;
    case 13: target.originalTimestamp = v; break;
    case 14: target.sentAt = v; break;
    case 15: target.writeKey = v; break;
    default: target.batch = v;
  }
}

// Byte classes inside a string: plain ASCII, the closing quote, a backslash, a byte JSON
// forbids there, a byte of a wider UTF-8 character (the caller checked that the UTF-8 is valid).
const S_QUOTE = 1;
const S_ESCAPE = 2;
const S_CONTROL = 3;
const S_WIDE = 4;
const STRING_CLASS = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) STRING_CLASS[b] = S_CONTROL;
for (let b = 0x80; b < 0x100; b++) STRING_CLASS[b] = S_WIDE;
STRING_CLASS[0x22] = S_QUOTE;
STRING_CLASS[0x5c] = S_ESCAPE;
/** The bytes that may follow a backslash, besides `u`. */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');
const IN_OBJECT = 1;
const IN_ARRAY = 2;

function invalid(): never {
  throw new TandemError('invalid_json');
}

function skipSpace(buf: Buffer, p: number, n: number): number {
  for (; p < n; p++) {
    const b = buf[p]!;
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return p;
  }
  return p;
}

/** What the last string stringEnd() passed held: an escape, a byte outside ASCII. */
let escaped = false;
let wide = false;

/** The index of the quote closing the string that opens at `open`. */
function stringEnd(buf: Buffer, open: number, n: number): number {
  let hasEscape = false;
  let hasWide = false;
  for (let p = open + 1; p < n; p++) {
    const c = STRING_CLASS[buf[p]!]!;
    if (c === 0) continue;
    if (c === S_QUOTE) {
      escaped = hasEscape;
      wide = hasWide;
      return p;
    }
    if (c === S_WIDE) hasWide = true;
    else if (c === S_ESCAPE) {
      hasEscape = true;
      const e = buf[p + 1]!;
      if (e === 0x75) {
        if (p + 5 >= n || !HEX[buf[p + 2]!] || !HEX[buf[p + 3]!] || !HEX[buf[p + 4]!] || !HEX[buf[p + 5]!]) invalid();
        p += 5;
      } else if (p + 1 < n && SIMPLE_ESCAPE[e]) p++;
      else invalid();
    } else invalid();
  }
  return invalid();
}

/** The value of the string stringEnd() just passed, quotes at `open` and `close`. */
function stringValue(buf: Buffer, open: number, close: number): string {
  if (escaped) return JSON.parse(buf.toString('utf8', open, close + 1)) as string;
  if (wide) return buf.toString('utf8', open + 1, close);
  // ASCII: a slice of the body read as Latin-1 once (a decoder call per string cost ~0.1 µs each).
  latin1 ??= buf.toString('latin1');
  return latin1.slice(open + 1, close);
}

/** The body being picked, as Latin-1 (bytes as chars), made at the first ASCII string wanted. */
let latin1: string | undefined;

const isDigit = (b: number | undefined): boolean => b !== undefined && b >= ZERO && b <= NINE;

/** Where the number starting at `p` ends. */
function numberEnd(buf: Buffer, p: number): number {
  let b = buf[p];
  if (b === MINUS) b = buf[++p];
  if (b === ZERO) b = buf[++p];
  else if (isDigit(b)) do b = buf[++p]; while (isDigit(b));
  else invalid();
  if (b === DOT) {
    b = buf[++p];
    if (!isDigit(b)) invalid();
    do b = buf[++p]; while (isDigit(b));
  }
  if (b === 0x65 || b === 0x45) {
    b = buf[++p];
    if (b === PLUS || b === MINUS) b = buf[++p];
    if (!isDigit(b)) invalid();
    do b = buf[++p]; while (isDigit(b));
  }
  return p;
}

function literalEnd(buf: Buffer, p: number, n: number, text: Uint8Array): number {
  if (p + text.length > n) invalid();
  for (let k = 0; k < text.length; k++) if (buf[p + k] !== text[k]) invalid();
  return p + text.length;
}

/** The index in PICKED_KEYS of a member's key (quotes at `open` and `close`, just passed), or -1. */
function pickedKey(buf: Buffer, open: number, close: number): number {
  if (escaped) return PICKED_KEYS.indexOf(stringValue(buf, open, close) as PickedKey);
  const candidates = BY_LENGTH[close - open - 1];
  if (candidates === undefined) return -1;
  next: for (const { index, bytes } of candidates) {
    for (let k = 0; k < bytes.length; k++) if (buf[open + 1 + k] !== bytes[k]) continue next;
    return index;
  }
  return -1;
}

// Byte classes between tokens, for skipContainer() (0: none of these, not allowed there).
const C_SPACE = 1;
const C_QUOTE = 2;
const C_OPEN = 3;
const C_CLOSE_OBJECT = 4;
const C_CLOSE_ARRAY = 5;
const C_COMMA = 6;
const C_COLON = 7;
const C_NUMBER = 8;
const C_LITERAL = 9;
const TOKEN_CLASS = new Uint8Array(256);
for (const b of [0x20, 0x09, 0x0a, 0x0d]) TOKEN_CLASS[b] = C_SPACE;
TOKEN_CLASS[0x22] = C_QUOTE;
TOKEN_CLASS[OPEN_OBJECT] = C_OPEN;
TOKEN_CLASS[OPEN_ARRAY] = C_OPEN;
TOKEN_CLASS[CLOSE_OBJECT] = C_CLOSE_OBJECT;
TOKEN_CLASS[CLOSE_ARRAY] = C_CLOSE_ARRAY;
TOKEN_CLASS[COMMA] = C_COMMA;
TOKEN_CLASS[COLON] = C_COLON;
for (const c of '-0123456789') TOKEN_CLASS[c.charCodeAt(0)] = C_NUMBER;
for (const c of 'tfn') TOKEN_CLASS[c.charCodeAt(0)] = C_LITERAL;

// What skipContainer() expects next.
const E_VALUE = 0;
const E_VALUE_OR_CLOSE = 1;
const E_KEY = 2;
const E_KEY_OR_CLOSE = 3;
const E_COLON = 4;
const E_AFTER = 5;

/** Container kinds by depth, for skipContainer(). */
let skipKinds = new Uint8Array(0);

/**
 * Past the container that opens at `p` (at `depth`), checking it and building nothing: the
 * properties and context of events, most of a body's tokens. One loop over the bytes with a
 * state for what may come next, without a call per token or the picking's bookkeeping.
 */
function skipContainer(buf: Buffer, p: number, n: number, depth: number, depthLimit: number): number {
  if (skipKinds.length <= depthLimit) skipKinds = new Uint8Array(depthLimit + 1);
  const kinds = skipKinds;
  const base = depth;
  // The container itself is the first value: opened below like any inside it.
  depth--;
  let expect = E_VALUE;
  while (p < n) {
    const b = buf[p]!;
    switch (TOKEN_CLASS[b]) {
      case C_SPACE:
        p++;
        continue;
      case C_QUOTE:
        if (expect === E_KEY || expect === E_KEY_OR_CLOSE) expect = E_COLON;
        else if (expect === E_VALUE || expect === E_VALUE_OR_CLOSE) expect = E_AFTER;
        else invalid();
        p = stringEnd(buf, p, n) + 1;
        continue;
      case C_OPEN:
        if (expect !== E_VALUE && expect !== E_VALUE_OR_CLOSE) invalid();
        if (++depth > depthLimit) tooDeep(depthLimit);
        if (b === OPEN_OBJECT) {
          kinds[depth] = IN_OBJECT;
          expect = E_KEY_OR_CLOSE;
        } else {
          kinds[depth] = IN_ARRAY;
          expect = E_VALUE_OR_CLOSE;
        }
        p++;
        continue;
      case C_CLOSE_OBJECT:
      case C_CLOSE_ARRAY: {
        const object = b === CLOSE_OBJECT;
        if (kinds[depth] !== (object ? IN_OBJECT : IN_ARRAY) || (expect !== E_AFTER && expect !== (object ? E_KEY_OR_CLOSE : E_VALUE_OR_CLOSE))) invalid();
        if (depth-- === base) return p + 1;
        expect = E_AFTER;
        p++;
        continue;
      }
      case C_COMMA:
        if (expect !== E_AFTER) invalid();
        expect = kinds[depth] === IN_OBJECT ? E_KEY : E_VALUE;
        p++;
        continue;
      case C_COLON:
        if (expect !== E_COLON) invalid();
        expect = E_VALUE;
        p++;
        continue;
      case C_NUMBER:
        if (expect !== E_VALUE && expect !== E_VALUE_OR_CLOSE) invalid();
        expect = E_AFTER;
        p = numberEnd(buf, p);
        continue;
      case C_LITERAL:
        if (expect !== E_VALUE && expect !== E_VALUE_OR_CLOSE) invalid();
        expect = E_AFTER;
        p = literalEnd(buf, p, n, b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL);
        continue;
      default:
        invalid();
    }
  }
  return invalid();
}

/** The value a primitive at `p` stands for, when `wanted` (the last one passed, with its end in `primitiveEnd`). */
let primitiveEnd = 0;

function primitive(buf: Buffer, p: number, n: number, wanted: boolean): unknown {
  const b = buf[p];
  if (b === QUOTE) {
    const close = stringEnd(buf, p, n);
    primitiveEnd = close + 1;
    return wanted ? stringValue(buf, p, close) : undefined;
  }
  if (b === 0x74) {
    primitiveEnd = literalEnd(buf, p, n, TRUE);
    return true;
  }
  if (b === 0x66) {
    primitiveEnd = literalEnd(buf, p, n, FALSE);
    return false;
  }
  if (b === 0x6e) {
    primitiveEnd = literalEnd(buf, p, n, NULL);
    return null;
  }
  primitiveEnd = numberEnd(buf, p);
  return wanted ? Number((latin1 ??= buf.toString('latin1')).slice(p, primitiveEnd)) : undefined;
}

function tooDeep(depthLimit: number): never {
  throw new TandemError('nesting_too_deep', `At most ${depthLimit} levels are allowed.`);
}

/**
 * The object that opens at `p` (at `depth`), its picked members set on `target`; with `batch`,
 * a `batch` array's items are picked too. Returns where it ends.
 */
function pickObject(buf: Buffer, p: number, n: number, depth: number, depthLimit: number, target: PickedObject, batch: Picked | undefined): number {
  if (depth > depthLimit) tooDeep(depthLimit);
  p = skipSpace(buf, p + 1, n);
  if (buf[p] === CLOSE_OBJECT) return p + 1;
  for (;;) {
    if (buf[p] !== QUOTE) invalid();
    const close = stringEnd(buf, p, n);
    const key = pickedKey(buf, p, close);
    p = skipSpace(buf, close + 1, n);
    if (buf[p] !== COLON) invalid();
    p = skipSpace(buf, p + 1, n);
    const b = buf[p];
    if (b === OPEN_ARRAY && key === BATCH && batch !== undefined) {
      const items: unknown[] = [];
      p = pickBatch(buf, p, n, depth + 1, depthLimit, items, (batch.itemSpans = []));
      target.batch = items;
    } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      const start = p;
      p = skipContainer(buf, p, n, depth + 1, depthLimit);
      if (key >= 0) setMember(target, key, key === PROPERTIES || key === TRAITS ? unparsed(b === OPEN_OBJECT, start, p) : b === OPEN_OBJECT ? OBJECT : ARRAY);
    } else {
      const v = primitive(buf, p, n, key >= 0);
      if (key >= 0) setMember(target, key, v);
      p = primitiveEnd;
    }
    p = skipSpace(buf, p, n);
    const c = buf[p];
    if (c === CLOSE_OBJECT) return p + 1;
    if (c !== COMMA) invalid();
    p = skipSpace(buf, p + 1, n);
  }
}

/** A batch array that opens at `p`: each object item picked, other items as primitive() gives them, each item's size. */
function pickBatch(buf: Buffer, p: number, n: number, depth: number, depthLimit: number, items: unknown[], spans: number[]): number {
  if (depth > depthLimit) tooDeep(depthLimit);
  p = skipSpace(buf, p + 1, n);
  if (buf[p] === CLOSE_ARRAY) return p + 1;
  for (;;) {
    const start = p;
    const b = buf[p];
    if (b === OPEN_OBJECT) {
      const item = new PickedObject();
      p = pickObject(buf, p, n, depth + 1, depthLimit, item, undefined);
      items.push(item);
    } else if (b === OPEN_ARRAY) {
      p = skipContainer(buf, p, n, depth + 1, depthLimit);
      items.push(ARRAY);
    } else {
      items.push(primitive(buf, p, n, true));
      p = primitiveEnd;
    }
    spans.push(p - start);
    p = skipSpace(buf, p, n);
    const c = buf[p];
    if (c === CLOSE_ARRAY) return p + 1;
    if (c !== COMMA) invalid();
    p = skipSpace(buf, p + 1, n);
  }
}

/**
 * Checks `bytes` (valid UTF-8, without a BOM) as JSON and picks what ingest reads. Throws
 * TandemError `invalid_json`, or `nesting_too_deep` past `depthLimit` levels of containers
 * (counted without recursion, whatever the nesting). `withValues`: giveValues() at once.
 */
export function pickJson(buf: Buffer, depthLimit: number, withValues = false): Picked {
  const n = buf.length;
  latin1 = undefined;
  const picked: Picked = { value: undefined, itemSpans: [] };
  let p = skipSpace(buf, 0, n);
  const b = buf[p];
  if (b === OPEN_OBJECT) {
    const top = new PickedObject();
    p = pickObject(buf, p, n, 1, depthLimit, top, picked);
    picked.value = top;
  } else if (b === OPEN_ARRAY) {
    p = skipContainer(buf, p, n, 1, depthLimit);
    picked.value = ARRAY;
  } else {
    picked.value = primitive(buf, p, n, true);
    p = primitiveEnd;
  }
  if (skipSpace(buf, p, n) !== n) invalid();
  latin1 = undefined;
  if (withValues) giveValues(buf, picked.value);
  return picked;
}

/**
 * The properties and traits objects of a pass's events (`value`, picked from `buf`: the
 * top-level object and a batch's items) with their values, for a tracking plan, which validates
 * them: JSON.parse of their bytes, which the pass checked. Nothing else of the body is built.
 */
export function giveValues(buf: Buffer, value: unknown): void {
  if (!(value instanceof PickedObject)) return;
  parseUnparsed(buf, value);
  if (Array.isArray(value.batch)) for (const item of value.batch) if (item instanceof PickedObject) parseUnparsed(buf, item);
}

function unparsed(object: boolean, start: number, end: number): Unparsed | UnparsedArray {
  if (object) return new Unparsed(start, end);
  const array = new UnparsedArray();
  array.start = start;
  array.end = end;
  return array;
}

function parseUnparsed(buf: Buffer, target: PickedObject): void {
  const valueOf = (v: unknown) => (v instanceof Unparsed || v instanceof UnparsedArray ? JSON.parse(buf.toString('utf8', v.start, v.end)) : v);
  target.properties = valueOf(target.properties);
  target.traits = valueOf(target.traits);
}
