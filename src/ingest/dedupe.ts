/**
 * Which messageIds were accepted within the window, per workspace. In memory for speed; filled
 * from the event log at start so that a restart forgets nothing. Entries are kept in arrival
 * order, so pruning only looks at the oldest.
 */
export class DedupeWindow {
  readonly #windowMs: number;
  readonly #seen = new Map<string, number>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  static key(workspaceId: string, messageId: string): string {
    return `${workspaceId}\n${messageId}`;
  }

  /** True when the id is new in the window (and is now claimed); false for a duplicate. */
  claim(key: string, receivedAt: number): boolean {
    const seen = this.#seen.get(key);
    if (seen !== undefined && seen > receivedAt - this.#windowMs) return false;
    if (seen !== undefined) this.#seen.delete(key);
    this.#seen.set(key, receivedAt);
    return true;
  }

  /** Forgets a claim whose events were not committed, so the client's retry is accepted. */
  release(key: string): void {
    this.#seen.delete(key);
  }

  prune(now: number): void {
    const cutoff = now - this.#windowMs;
    for (const [key, at] of this.#seen) {
      if (at > cutoff) break;
      this.#seen.delete(key);
    }
  }

  get size(): number {
    return this.#seen.size;
  }
}
