/**
 * Identifier values that never identify anyone: the defaults of the most careful published
 * practice (see DESIGN.md, "Identity") and the junk of shared/RELIABILITY.md. Matched
 * case-insensitively, trimmed, ignoring invisible characters, and also when quoted.
 */
const BLOCKED = new Set([
  '-1', 'null', 'undefined', 'nan', 'none', 'nil', 'anonymous', 'guest', '[object object]', 'true', 'false',
  // Placeholders that leak from templates and test fixtures (shared/RELIABILITY.md).
  'id', 'email', 'abc123',
]);
/** Zero-width characters, direction marks and NUL: invisible, so they never make a value real. */
const INVISIBLE = /[\u0000\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/g;
const ZEROS_AND_DASHES = /^[0-]*$/;
const QUOTES = /^(["'`])(.*)\1$/s;

/** INVISIBLE without the `g` flag, for a test that keeps no state between calls. */
const HAS_INVISIBLE = new RegExp(INVISIBLE.source);
const LONGEST_BLOCKED = Math.max(...[...BLOCKED].map((b) => b.length));
/** A-Z, a-z or 1-9: a value that starts so is neither quoted nor zeros and dashes. */
const isPlainStart = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x31 && c <= 0x39);

export function isBlockedIdentifier(value: string): boolean {
  const visible = HAS_INVISIBLE.test(value) ? value.replace(INVISIBLE, '') : value;
  // Most identifiers start and end with a letter or a digit other than 0: then there is nothing
  // to trim, they are neither quoted nor zeros and dashes, and only the word list can block them
  // (never when longer than any word in it).
  if (isPlainStart(visible.charCodeAt(0)) && isPlainStart(visible.charCodeAt(visible.length - 1))) return visible.length <= LONGEST_BLOCKED && BLOCKED.has(visible.toLowerCase());
  let v = visible.trim().toLowerCase();
  for (let m = QUOTES.exec(v); m; m = QUOTES.exec(v)) v = m[2]!.trim();
  return v === '' || ZEROS_AND_DASHES.test(v) || BLOCKED.has(v);
}
