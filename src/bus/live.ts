import type { LogRecord } from '../store/ports.ts';

export type Listener = (record: LogRecord) => void;

/**
 * In-process fan-out of committed log records to live readers (the debugger stream). Listeners
 * run after the commit; one that throws is removed rather than breaking ingest.
 */
export class LiveFeed {
  readonly #listeners = new Set<Listener>();

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  publish(record: LogRecord): void {
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch {
        this.#listeners.delete(listener);
      }
    }
  }

  get size(): number {
    return this.#listeners.size;
  }
}
