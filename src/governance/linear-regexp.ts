import v8 from 'node:v8';

// V8's linear-time regular expression engine (no backtracking, so no pattern can take
// exponential time) sits behind a flag; it applies process-wide, worker threads included.
v8.setFlagsFromString('--enable-experimental-regexp-engine');

/** Unicode-only syntax (property escapes, code point escapes) and characters outside the BMP. */
const NEEDS_UNICODE = /\\[pP]\{|\\u\{|[\ud800-\udfff]/;

/**
 * The regular expression engine for `pattern` and `patternProperties` in tracking plans. A plan
 * is written by an engineer but runs against every event a client sends: a pattern such as
 * `^(a+)+$` would let one event hold an ingest thread for minutes. So patterns run in linear
 * time or not at all: a plan whose pattern needs backtracking (back-references, lookahead) or
 * Unicode-only syntax (which the linear engine lacks) is refused with the reason. A pattern is
 * first checked as JSON Schema reads it (ECMA-262 with the `u` flag).
 */
export const linearRegExp = Object.assign(
  (source: string): RegExp => {
    new RegExp(source, 'u');
    if (NEEDS_UNICODE.test(source)) throw new SyntaxError(`Invalid regular expression: /${source}/: Unicode property or code point escapes are not supported (patterns must run in linear time)`);
    return new RegExp(source, 'l');
  },
  { code: 'linearRegExp' },
);
