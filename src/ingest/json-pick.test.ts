import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TandemError } from '../errors.ts';
import { ARRAY, OBJECT, PICKED_KEYS, PickedObject, pickJson, Unparsed, UnparsedArray } from './json-pick.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const stand = (v: unknown) => (Array.isArray(v) ? ARRAY : isObject(v) ? OBJECT : v);

/** Reference: what pickJson should give, from JSON.parse's value (`withValues`: properties and traits whole). */
function project(value: unknown, withValues = false, top = true): unknown {
  if (!isObject(value)) return stand(value);
  const out: Record<string, unknown> = {};
  for (const key of PICKED_KEYS) {
    if (!Object.hasOwn(value, key)) continue;
    const v = value[key];
    if (top && key === 'batch' && Array.isArray(v)) out[key] = v.map((item) => (isObject(item) ? project(item, withValues, false) : stand(item)));
    else out[key] = withValues && (key === 'properties' || key === 'traits') ? v : stand(v);
  }
  return out;
}

/** A pass's value with its PickedObjects as plain objects of their present members (unparsed members as the containers they are). */
function plain(v: unknown): unknown {
  if (v instanceof Unparsed) return OBJECT;
  if (v instanceof UnparsedArray) return ARRAY;
  if (Array.isArray(v) && (v as unknown) !== ARRAY) return v.map(plain);
  if (!(v instanceof PickedObject)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, m]) => m !== undefined).map(([k, m]) => [k, plain(m)]));
}
const pick = (raw: string | Buffer, depthLimit = 1000, withValues = false) => plain(pickJson(Buffer.isBuffer(raw) ? raw : Buffer.from(raw), depthLimit, withValues).value);

const code = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof TandemError, String(err));
    return err.code;
  }
};

// Keys and strings that exercise the picking: picked names, near misses, escapes, wide characters.
const text = fc.oneof(
  fc.constantFrom(...PICKED_KEYS, 'userid', 'userIdx', 'typ', '__proto__', 'constructor', ''),
  fc.string({ unit: fc.constantFrom('"', '\\', '/', '{', '}', '[', ']', ',', ':', 'a', 'é', '€', '😀', '\u2028', '\n', '\u0000', '\t') }),
);
const leaf = fc.oneof(text, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null));
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(text, tie('value'), { maxKeys: 5 })),
})).value;
const event = fc.dictionary(text, json, { maxKeys: 8 });
const body = fc.oneof(
  fc.record({ batch: fc.array(fc.oneof(event, leaf), { maxLength: 6 }), sentAt: leaf, context: json }, { requiredKeys: ['batch'] }),
  event,
  json,
);

test('picks what JSON.parse gives for the picked members, on arbitrary JSON with any spacing', () => {
  fc.assert(
    fc.property(body, fc.constantFrom(undefined, 1, '\t', ' \n '), fc.boolean(), (value, space, withValues) => {
      const raw = JSON.stringify(value, null, space);
      assert.deepEqual(pick(raw, 1000, withValues), project(JSON.parse(raw), withValues));
    }),
    { numRuns: 1000 },
  );
});

test('a batch item size is its bytes as sent', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(event, leaf), { maxLength: 6 }), json, (items, extra) => {
      const raw = JSON.stringify({ context: extra, batch: items });
      assert.deepEqual(pickJson(Buffer.from(raw), 1000).itemSpans, items.map((item) => Buffer.byteLength(JSON.stringify(item))));
    }),
    { numRuns: 300 },
  );
});

test('accepts exactly what JSON.parse accepts: arbitrary edits of valid JSON', () => {
  const edited = fc.tuple(body, fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.constantFrom('"', '\\', ',', ':', '{', '}', '[', ']', '-', '.', 'e', '0', '1', 'u', 't', 'n', 'f', ' ', '\n', '\u0001', 'x')), { maxLength: 3 })).map(([value, edits]) => {
    let raw = JSON.stringify(value);
    for (const [at, kind, c] of edits) {
      const i = raw.length === 0 ? 0 : at % raw.length;
      raw = kind === 0 ? raw.slice(0, i) + raw.slice(i + 1) : kind === 1 ? raw.slice(0, i) + c + raw.slice(i) : raw.slice(0, i) + c + raw.slice(i + 1);
    }
    return raw;
  });
  fc.assert(
    fc.property(edited, (edit) => {
      // As the bytes say (a cut surrogate pair is sent as U+FFFD).
      const bytes = Buffer.from(edit);
      const raw = bytes.toString('utf8');
      let expected: unknown;
      let valid = true;
      try {
        expected = project(JSON.parse(raw));
      } catch {
        valid = false;
      }
      if (valid) assert.deepEqual(pick(bytes), expected, raw);
      else assert.equal(code(() => pickJson(bytes, 1000)), 'invalid_json', raw);
    }),
    { numRuns: 3000 },
  );
});

test('the grammar, case by case', () => {
  const valid = ['0', '-0', '1.5e+3', '-12.25E-2', '1e400', '"\\u00e9\\ud83d\\ude00"', ' \t\n\r[ ] ', '{}', '[[],{}]', 'true', 'null', '"\u2028"', '{"a":[1,{"b":null}],"c":"d"}'];
  for (const raw of valid) assert.deepEqual(pick(raw, 64), project(JSON.parse(raw)), raw);
  const invalid = ['', ' ', '01', '1.', '.5', '-', '+1', '1e', '1e+', 'tru', 'nul', 'True', '"a', '"\\x"', '"\\u12g4"', '"\u0001"', '[1,]', '[,1]', '{"a":1,}', '{"a"}', '{"a" 1}', '{1:2}', "{'a':1}", '[1 2]', '{}{}', '{} x', 'NaN', 'Infinity', '[', ']', '{"a":1]', '[1}', '\u00a0{}', '"\\'];
  for (const raw of invalid) {
    assert.throws(() => JSON.parse(raw), SyntaxError, `JSON.parse rejects ${JSON.stringify(raw)}`);
    assert.equal(code(() => pickJson(Buffer.from(raw), 64)), 'invalid_json', raw);
  }
});

test('repeated keys keep the last, escaped keys count as what they say, and only picked keys are built', () => {
  const picked = pickJson(Buffer.from('{"userId":"a","user\\u0049d":"b","type":"x","type":{"k":1},"__proto__":{"polluted":true},"batch":[1],"batch":[{"event":"e","properties":[1]},"s",[2]]}'), 64);
  assert.deepEqual(plain(picked.value), { userId: 'b', type: OBJECT, batch: [{ event: 'e', properties: ARRAY }, 's', ARRAY] });
  assert.deepEqual(picked.itemSpans, [Buffer.byteLength('{"event":"e","properties":[1]}'), 3, 3]);
  assert.equal(Object.getPrototypeOf(picked.value), PickedObject.prototype, 'a __proto__ member changes nothing');
});

test('nesting deeper than the limit is refused at the limit, without recursion', () => {
  assert.equal(code(() => pickJson(Buffer.from('['.repeat(100_000) + ']'.repeat(100_000)), 64)), 'nesting_too_deep');
  assert.equal(code(() => pickJson(Buffer.from('{"a":'.repeat(100_000)), 64)), 'nesting_too_deep');
  assert.equal(pickJson(Buffer.from('[[[]]]'), 3).value, ARRAY);
  assert.equal(code(() => pickJson(Buffer.from('[[[[]]]]'), 3)), 'nesting_too_deep');
  assert.equal(code(() => pickJson(Buffer.from('{"batch":[{"a":[]}]}'), 3)), 'nesting_too_deep');
  assert.equal(pickJson(Buffer.from('"[[[[[[\\"[[["'), 3).value, '[[[[[[\\"[[['.replace('\\"', '"'), 'brackets inside strings do not count');
});
