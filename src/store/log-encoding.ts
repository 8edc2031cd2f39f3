import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/**
 * How the event log stores a request's bytes and ingest's verdicts on them (ingest threads
 * store them beside the log writer, see LogEntry.bodyEncoding; the writer stores what others
 * append). Both go zstd-compressed (level 1) as one frame, the verdicts first (`zstd+meta`; the
 * meta column then holds the verdicts' length in bytes): analytics JSON repeats its keys and
 * context on every event, and the verdicts repeat each event's messageId and ids, which are
 * random and compress only against their first copy, so one frame stores them once (a batch of
 * 100 events as SDKs send them: 7.3 KB against 10.7 KB in two frames, in one call instead of
 * two). Every byte not written is a byte neither the WAL, the checkpoint nor the fsync carries.
 *
 * What is too small to gain is stored as it came (a body with encoding NULL, verdicts as text).
 * Rows written before there was one frame read as before: a body alone compressed (`zstd`), verdicts as
 * text or compressed bytes of their own.
 */
const MIN_BYTES = 256;
const PARAMS = { [constants.ZSTD_c_compressionLevel]: 1 };
export const ONE_FRAME = 'zstd+meta' as const;

/** A request's JSON bytes and the verdicts' text (event-meta.ts) as the log stores them. */
export function storedEntry(json: Uint8Array, verdicts: string): { body: Uint8Array; encoding: typeof ONE_FRAME | null; meta: string } {
  const head = Buffer.byteLength(verdicts, 'utf8');
  if (head + json.byteLength >= MIN_BYTES) {
    const both = Buffer.allocUnsafe(head + json.byteLength);
    both.write(verdicts, 0, 'utf8');
    both.set(json, head);
    // The size told up front lets zstd size its tables to the input rather than to an unknown stream.
    const frame = zstdCompressSync(both, { params: PARAMS, pledgedSrcSize: both.byteLength });
    if (frame.byteLength < both.byteLength) return { body: frame, encoding: ONE_FRAME, meta: String(head) };
  }
  return { body: json, encoding: null, meta: verdicts };
}

/** The verdicts' text of verdicts stored on their own (text, or bytes compressed, as rows from before hold them). */
function metaOf(stored: string | Uint8Array): string {
  return typeof stored === 'string' ? stored : zstdDecompressSync(stored).toString('utf8');
}

/** The JSON bytes and the verdicts' text of a stored row, whichever way it was stored. */
export function decodeStored(body: Uint8Array, encoding: string | null, meta: string | Uint8Array): { body: Buffer; meta: string } {
  if (encoding === ONE_FRAME) {
    const frame = zstdDecompressSync(body);
    const split = verdictsLength(meta);
    return { body: frame.subarray(split), meta: frame.toString('utf8', 0, split) };
  }
  return { body: bodyOf(body, encoding), meta: metaOf(meta) };
}

/**
 * The verdicts' text of a stored row: for rows of one frame, decompressed with the body they
 * lead (readers of verdicts alone may leave `body` out, as null, for rows of other encodings).
 */
export function verdictsOf(body: Uint8Array | null, encoding: string | null, meta: string | Uint8Array): string {
  if (encoding !== ONE_FRAME) return metaOf(meta);
  if (!body) throw new Error('log row of one frame read without its body');
  return decodeStored(body, encoding, meta).meta;
}

function verdictsLength(meta: string | Uint8Array): number {
  const n = typeof meta === 'string' ? Number(meta) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error('log row of one frame without the length of its verdicts');
  return n;
}

/** The JSON bytes of a body stored alone (NULL, or `zstd` as rows from before hold it). */
function bodyOf(bytes: Uint8Array, encoding: string | null): Buffer {
  if (encoding === 'zstd') return zstdDecompressSync(bytes);
  if (encoding === null) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new Error(`log body stored with an unknown encoding ${JSON.stringify(encoding)}`);
}
