/** A parsed JSON object, and the check that a parsed value is one (not null, not an array). */
export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
