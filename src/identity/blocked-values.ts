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

export function isBlockedIdentifier(value: string): boolean {
  let v = value.replace(INVISIBLE, '').trim().toLowerCase();
  for (let m = QUOTES.exec(v); m; m = QUOTES.exec(v)) v = m[2]!.trim();
  return v === '' || ZEROS_AND_DASHES.test(v) || BLOCKED.has(v);
}
