import { markDuplicates, messageIdsOf } from './event-meta.ts';

/**
 * Which messageIds were appended within the window, per workspace: the log's idempotency
 * memory. In memory for speed, filled from the log when the writer starts, so a restart
 * forgets nothing. Entries are kept in arrival order, so pruning only looks at the oldest.
 */
export class DedupeWindow {
  readonly #windowMs: number;
  readonly #workspaces = new Map<string, Map<string, number>>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  #seen(workspaceId: string): Map<string, number> {
    let seen = this.#workspaces.get(workspaceId);
    if (!seen) this.#workspaces.set(workspaceId, (seen = new Map()));
    return seen;
  }

  /** True when the id is new in the window (and is now claimed); false for a duplicate. */
  claim(workspaceId: string, messageId: string, receivedAt: number): boolean {
    const seen = this.#seen(workspaceId);
    const at = seen.get(messageId);
    if (at !== undefined) {
      if (at > receivedAt - this.#windowMs) return false;
      seen.delete(messageId);
    }
    seen.set(messageId, receivedAt);
    return true;
  }

  /** Forgets a claim whose events were not committed, so the client's retry is accepted. */
  release(workspaceId: string, messageId: string): void {
    this.#workspaces.get(workspaceId)?.delete(messageId);
  }

  /**
   * Claims the ids of one log entry; returns the new meta (with duplicates marked, or the same
   * string when there are none), the duplicate indexes, and the ids it claimed.
   */
  claimEntry(workspaceId: string, receivedAt: number, meta: string, messageIds: readonly string[]): { meta: string; duplicates: number[]; claimed: string[] } {
    const duplicates: number[] = [];
    const claimed: string[] = [];
    for (let i = 0; i < messageIds.length; i++) {
      const id = messageIds[i]!;
      if (this.claim(workspaceId, id, receivedAt)) claimed.push(id);
      else duplicates.push(i);
    }
    return { meta: duplicates.length === 0 ? meta : markDuplicates(meta, duplicates), duplicates, claimed };
  }

  /** Claims what a stored entry claimed when it was appended (for the start-up load). */
  replay(workspaceId: string, receivedAt: number, meta: string): void {
    for (const id of messageIdsOf(meta)) this.claim(workspaceId, id, receivedAt);
  }

  prune(now: number): void {
    const cutoff = now - this.#windowMs;
    for (const seen of this.#workspaces.values()) {
      for (const [key, at] of seen) {
        if (at > cutoff) break;
        seen.delete(key);
      }
    }
  }
}
