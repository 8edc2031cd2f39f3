import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

/**
 * How the event log stores request bodies (the SQLite adapter's `encoding` column; ingest threads
 * compress beside the log writer, see LogEntry.bodyEncoding). Request bodies are stored
 * zstd-compressed (level 1): analytics JSON repeats its keys and
 * context on every event, so a batch shrinks several times over, and every byte not written
 * is a byte neither the WAL, the checkpoint nor the fsync has to carry. Bodies too small to
 * gain are stored as received (encoding NULL), as are rows written before compression existed.
 */
const MIN_BYTES = 256;
const PARAMS = { [constants.ZSTD_c_compressionLevel]: 1 };

export function storedBody(body: Uint8Array): { bytes: Uint8Array; encoding: string | null } {
  if (body.byteLength < MIN_BYTES) return { bytes: body, encoding: null };
  // The size told up front lets zstd size its tables to the body rather than to an unknown stream.
  const packed = zstdCompressSync(body, { params: PARAMS, pledgedSrcSize: body.byteLength });
  return packed.byteLength < body.byteLength ? { bytes: packed, encoding: 'zstd' } : { bytes: body, encoding: null };
}

/** The JSON bytes of a stored body. */
export function bodyOf(bytes: Uint8Array, encoding: string | null): Buffer {
  if (encoding === 'zstd') return zstdDecompressSync(bytes);
  if (encoding === null) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new Error(`log body stored with an unknown encoding ${JSON.stringify(encoding)}`);
}
