/**
 * How many requests are inside the ingest path right now (judging, or waiting for their
 * commit), counted by the HTTP thread in memory it shares with the profile stage's thread, which
 * reads it to give way while ingest is saturated: acknowledging events comes before processing
 * them, and the stage catches up once the load drops.
 */
export class IngestPressure {
  readonly shared: SharedArrayBuffer;
  readonly #count: Int32Array;

  constructor(shared = new SharedArrayBuffer(4)) {
    this.shared = shared;
    this.#count = new Int32Array(shared);
  }

  enter(): void {
    Atomics.add(this.#count, 0, 1);
  }

  leave(): void {
    Atomics.sub(this.#count, 0, 1);
  }

  get inFlight(): number {
    return Atomics.load(this.#count, 0);
  }
}

/** From this many requests in flight at once, ingest counts as saturated. */
export const SATURATED_REQUESTS = 4;
