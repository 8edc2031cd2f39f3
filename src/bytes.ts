/**
 * Whether a view covers all of a (non-shared) ArrayBuffer, so that moving the buffer to another
 * thread moves exactly these bytes. Request bodies are such views; slices of Node's shared
 * Buffer pool (small Buffers) never are, and must be copied instead.
 */
export const ownsItsMemory = (view: Uint8Array): boolean => view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
