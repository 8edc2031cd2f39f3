import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/**
 * How the event log stores request bodies and verdicts (ingest threads compress them beside the
 * log writer, see LogEntry.bodyEncoding and LogEntry.meta; the writer compresses what others
 * append). Both are stored zstd-compressed (level 1): analytics JSON repeats its keys and
 * context on every event, so a batch shrinks several times over, and every byte not written
 * is a byte neither the WAL, the checkpoint nor the fsync has to carry. What is too small to
 * gain is stored as it came (a body with encoding NULL, verdicts as text), as are rows written
 * before compression existed.
 */
const MIN_BYTES = 256;
const PARAMS = { [constants.ZSTD_c_compressionLevel]: 1 };

/** The bytes compressed, when they are worth it and it pays. */
function packed(bytes: Uint8Array): Buffer | undefined {
  if (bytes.byteLength < MIN_BYTES) return undefined;
  // The size told up front lets zstd size its tables to the input rather than to an unknown stream.
  const out = zstdCompressSync(bytes, { params: PARAMS, pledgedSrcSize: bytes.byteLength });
  return out.byteLength < bytes.byteLength ? out : undefined;
}

export function storedBody(body: Uint8Array): { bytes: Uint8Array; encoding: string | null } {
  const bytes = packed(body);
  return bytes ? { bytes, encoding: 'zstd' } : { bytes: body, encoding: null };
}

/**
 * Verdicts (event-meta.ts's JSON text) as the log stores them: compressed like bodies when
 * that pays, as bytes (a text value stays the text). They repeat their shape for every event
 * and were most of a batch's row once the body was compressed: 11 KB of text against 2 KB of
 * body for a batch of 100, written to the WAL, synced and checkpointed on every commit.
 */
export function storedMeta(meta: string): string | Uint8Array {
  return (meta.length >= MIN_BYTES && packed(Buffer.from(meta, 'utf8'))) || meta;
}

/** The verdicts' JSON text of stored meta. */
export function metaOf(stored: string | Uint8Array): string {
  return typeof stored === 'string' ? stored : zstdDecompressSync(stored).toString('utf8');
}

/** The JSON bytes of a stored body. */
export function bodyOf(bytes: Uint8Array, encoding: string | null): Buffer {
  if (encoding === 'zstd') return zstdDecompressSync(bytes);
  if (encoding === null) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new Error(`log body stored with an unknown encoding ${JSON.stringify(encoding)}`);
}
