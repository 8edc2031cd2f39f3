/**
 * Identifier values that never identify anyone: the defaults of the most careful published
 * practice (see DESIGN.md, "Identity"). Matched case-insensitively, trimmed, and also when the
 * value is wrapped in quotes.
 */
const BLOCKED = new Set([
  '-1', 'null', 'undefined', 'nan', 'none', 'nil', 'anonymous', 'guest', '[object object]', 'true', 'false',
]);
const ZEROS_AND_DASHES = /^[0-]*$/;
const QUOTES = /^(["'`])(.*)\1$/s;

export function isBlockedIdentifier(value: string): boolean {
  let v = value.trim().toLowerCase();
  for (let m = QUOTES.exec(v); m; m = QUOTES.exec(v)) v = m[2]!.trim();
  return v === '' || ZEROS_AND_DASHES.test(v) || BLOCKED.has(v);
}
