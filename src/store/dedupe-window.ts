import { markDuplicates, messageIdsOf } from './event-meta.ts';

/**
 * Which messageIds were appended within the window, per workspace: the log's idempotency
 * memory. In memory for speed, filled from the log when the writer starts, so a restart
 * forgets nothing. Entries are kept in arrival order, so pruning only looks at the oldest. A
 * window of more than GENERATION_SIZE ids (V8 caps a Map at 2^24 entries; ~194 events/s fill
 * that in a day) spreads over several maps. Memory, ~100 bytes per id, is the limit that remains.
 */
/** V8's Map holds at most 2^24 entries; a workspace's window spreads over maps of at most this many. */
export const GENERATION_SIZE = 1 << 23;

export class DedupeWindow {
  readonly #windowMs: number;
  readonly #generationSize: number;
  /** Per workspace, maps of id → receivedAt, oldest first; only the newest takes new ids. */
  readonly #workspaces = new Map<string, Array<Map<string, number>>>();

  constructor(windowMs: number, generationSize = GENERATION_SIZE) {
    this.#windowMs = windowMs;
    this.#generationSize = generationSize;
  }

  #generations(workspaceId: string): Array<Map<string, number>> {
    let generations = this.#workspaces.get(workspaceId);
    if (!generations) this.#workspaces.set(workspaceId, (generations = [new Map()]));
    return generations;
  }

  /** True when the id is new in the window (and is now claimed); false for a duplicate. */
  claim(workspaceId: string, messageId: string, receivedAt: number): boolean {
    const generations = this.#generations(workspaceId);
    for (let g = generations.length - 1; g >= 0; g--) {
      const at = generations[g]!.get(messageId);
      if (at === undefined) continue;
      if (at > receivedAt - this.#windowMs) return false;
      generations[g]!.delete(messageId);
      break;
    }
    this.#remember(generations, messageId, receivedAt);
    return true;
  }

  /** Puts the id last in the newest map (arrival order is what prune relies on). */
  #remember(generations: Array<Map<string, number>>, messageId: string, receivedAt: number): void {
    let newest = generations[generations.length - 1]!;
    if (newest.size >= this.#generationSize) generations.push((newest = new Map()));
    const size = newest.size;
    newest.set(messageId, receivedAt);
    // Already there (a replayed id seen again): move it to the end.
    if (newest.size === size) newest.delete(messageId), newest.set(messageId, receivedAt);
  }

  /** Forgets a claim whose events were not committed (the newest entry of the id), so the client's retry is accepted. */
  release(workspaceId: string, messageId: string): void {
    const generations = this.#workspaces.get(workspaceId) ?? [];
    for (let g = generations.length - 1; g >= 0; g--) if (generations[g]!.delete(messageId)) return;
  }

  /** How many ids the window holds for a workspace. */
  size(workspaceId: string): number {
    return (this.#workspaces.get(workspaceId) ?? []).reduce((n, seen) => n + seen.size, 0);
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

  /**
   * Remembers what a stored entry claimed when it was appended (the start-up load, oldest entry
   * first); how many ids. No look-up: the log holds an id twice, not marked duplicate, only when
   * the first had left the window, and then the newer entry, found first, is the one that counts
   * (an older one left behind in an older map is never found before it, and is pruned).
   */
  replay(workspaceId: string, receivedAt: number, meta: string): number {
    const ids = messageIdsOf(meta);
    const generations = this.#generations(workspaceId);
    for (const id of ids) this.#remember(generations, id, receivedAt);
    return ids.length;
  }

  prune(now: number): void {
    const cutoff = now - this.#windowMs;
    for (const generations of this.#workspaces.values()) {
      for (const seen of generations) {
        let expired = true;
        for (const [key, at] of seen) {
          if (at > cutoff) {
            expired = false;
            break;
          }
          seen.delete(key);
        }
        if (!expired) break;
      }
      while (generations.length > 1 && generations[0]!.size === 0) generations.shift();
    }
  }
}
