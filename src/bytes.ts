/**
 * Whether a view covers all of a (non-shared) ArrayBuffer, so that moving the buffer to another
 * thread moves exactly these bytes. Request bodies are such views; slices of Node's shared
 * Buffer pool (small Buffers) never are, and must be copied instead.
 */
export const ownsItsMemory = (view: Uint8Array): boolean => view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;

/** The view itself when it owns its memory (and `mayTake`: its owner gave it up), else a copy that does: bytes to move to another thread. */
export const movable = (view: Uint8Array, mayTake = true): Uint8Array => (mayTake && ownsItsMemory(view) ? view : new Uint8Array(view));
