import { isUtf8 } from 'node:buffer';
import { gunzipSync, inflateSync } from 'node:zlib';
import { TandemError } from '../errors.ts';
import { pickJson } from './json-pick.ts';

export const MAX_DEPTH = 64;

/** Undoes Content-Encoding, refusing to inflate past the hard cap. */
export function decodeBody(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Buffer {
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return raw;
  if (encoding !== 'gzip' && encoding !== 'deflate') throw new TandemError('invalid_encoding', `Content-Encoding ${JSON.stringify(encoding.slice(0, 20))} is not supported.`);
  try {
    return encoding === 'gzip' ? gunzipSync(raw, { maxOutputLength: maxBytes }) : inflateSync(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new TandemError('body_too_large', 'The inflated body is over the cap.');
    throw new TandemError('invalid_encoding', `The body is not valid ${encoding}.`);
  }
}

/**
 * A request's JSON, checked: `value` holds the members ingest reads (json-pick.ts; giveValues()
 * for a tracking plan), `itemSpans` each batch item's size in bytes.
 */
export type ParsedBody = { value: unknown; bytes: Buffer; itemSpans: number[] };

/** UTF-8 check, optional BOM, then one pass that checks the JSON and picks. Whatever the Content-Type said. */
export function parseJsonBody(decoded: Buffer): ParsedBody {
  let bytes = decoded;
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  if (bytes.length === 0) throw new TandemError('invalid_json', 'The body is empty.');
  if (!isUtf8(bytes)) throw new TandemError('invalid_encoding', 'The body is not valid UTF-8.');
  const { value, itemSpans } = pickJson(bytes, MAX_DEPTH);
  return { value, bytes, itemSpans };
}
