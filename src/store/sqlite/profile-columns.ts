import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Needs } from '../../audiences/definition.ts';
import type { ProfileColumnsView } from '../../profiles/ports.ts';
import type { ColumnStats } from '../ports.ts';

/** Hidden computed keys (behind audience event conditions) are never custom traits. */
const HIDDEN = '__';

/**
 * One kept column: a value per slot, the profiles whose value may have changed since it was read,
 * and how far loading it has come (slots of the sorted prefix read so far).
 */
type Kept<T> = { values: T[]; dirty: Set<string>; loaded: number; complete: boolean; one: (profileId: string) => T };

/**
 * A workspace's profiles, each at a slot, and the columns kept for them. The first slots (sorted())
 * hold the profiles live when it was listed, in id order (found by binary search, no map of a
 * million strings); profiles created since follow, found through `created`. Listing, like
 * loading a column, goes a slice at a time, so the stage is never held up for long.
 */
type Workspace = {
  ids: string[];
  created: Map<string, number>;
  live: boolean[];
  /** Until every live profile is listed: the last id listed, and the profiles created meanwhile. */
  listing: { after: string; created: string[] } | undefined;
  values: Map<string, Kept<unknown>>;
  members: Map<string, Kept<boolean>>;
  consents: Map<string, Kept<boolean | undefined>>;
  accounts: Map<string, Kept<unknown[]>>;
  /** Profiles whose liveness may have changed (merged away). */
  dirty: Set<string>;
};

/** Profiles listed, or read into a column, per step: ~20–50 ms of the stage's thread. */
export const SLICE = 50_000;
/** Workspaces with more live profiles keep no columns (TANDEM_COLUMNS_MAX_PROFILES). */
export const COLUMNS_MAX_PROFILES = 5_000_000;

/**
 * Past this many profiles to read again, reading them one by one costs more than loading the
 * column anew (a point read is ~1/16 of a profile's share of a full load), so it is dropped.
 */
const tooMany = (ws: Workspace) => Math.max(1000, ws.ids.length >> 4);

/** Marks a profile's entry of a column (if kept) to be read again. */
function mark<T>(ws: Workspace, columns: Map<string, Kept<T>>, key: string, profileId: string): void {
  const kept = columns.get(key);
  if (!kept) return;
  kept.dirty.add(profileId);
  if (kept.dirty.size > tooMany(ws)) columns.delete(key);
}

/** A profile's slot; ids are ours (`prof_` and a UUID, ASCII), so JavaScript's order is SQLite's. */
/** How many slots, from the first, hold profiles in id order: all but those created since the list. */
const sorted = (ws: Workspace) => ws.ids.length - ws.created.size;

function slotOf(ws: Workspace, profileId: string): number | undefined {
  const n = sorted(ws);
  let [lo, hi] = [0, n];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ws.ids[mid]! < profileId) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && ws.ids[lo] === profileId ? lo : ws.created.get(profileId);
}

/** Puts rows of (profile id, …), in id order and within the sorted slots from `from`, into their slots. */
function fillSlots(ws: Workspace, rows: unknown[][], from: number, put: (slot: number, row: unknown[]) => void): void {
  const n = sorted(ws);
  let i = from;
  for (const row of rows) {
    const profileId = row[0] as string;
    while (i < n && ws.ids[i]! < profileId) i++;
    if (i < n && ws.ids[i] === profileId) put(i, row);
  }
}

/** How one column is read: the sorted slots `from` to `to` (exclusive) into `out`, or one profile. */
type Reader<T> = { range(from: number, to: number, out: T[]): void; one(profileId: string): T };
type AnyColumns = Map<string, Kept<unknown>>;

/**
 * What audiences read about every live profile, kept in memory by the profile stage's writer so
 * that previews and sweeps over all profiles touch no SQL rows: per workspace an index of live
 * profiles, and per key, audience, consent purpose or account trait a column of values by slot.
 * Columns are loaded a slice at a time (warm) or at once (view), then kept exact without
 * re-reading them: every write marks the profiles and keys it touched, and those entries are read
 * again, one profile at a time, before the column is next used. A rollback forgets everything read
 * inside it (see `tentative` and `clear`). Memory, measured on a million profiles: ~53 bytes per
 * profile for the list (short ids), ~35 per profile for a column of short strings.
 */
export class ProfileColumns {
  readonly #s: Record<string, StatementSync>;
  readonly #workspaces = new Map<string, Workspace>();
  readonly #slice: number;
  readonly #maxProfiles: number;
  /** Workspaces found to have more live profiles than #maxProfiles (listed again after a clear). */
  readonly #tooBig = new Set<string>();
  /** Inside a tentative run: what was read then, to be read again once it is rolled back. */
  #tentative: { read: Array<[Set<string>, string]>; loaded: Array<() => void> } | undefined;

  constructor(db: DatabaseSync, { slice = SLICE, maxProfiles = COLUMNS_MAX_PROFILES } = {}) {
    this.#slice = slice;
    this.#maxProfiles = maxProfiles;
    const p = (sql: string) => {
      const s = db.prepare(sql);
      s.setReturnArrays(true);
      return s;
    };
    // Range reads return rows in profile id order (that of the primary key or index they read).
    this.#s = {
      list: p('SELECT id FROM profiles WHERE workspace_id = ? AND merged_into IS NULL AND id > ? ORDER BY id LIMIT ?'),
      profile: p('SELECT workspace_id, merged_into IS NULL FROM profiles WHERE id = ?'),
      traits: p('SELECT profile_id, value FROM traits WHERE profile_id BETWEEN ? AND ? AND key = ? ORDER BY profile_id'),
      computed: p('SELECT profile_id, value FROM computed_values WHERE profile_id BETWEEN ? AND ? AND key = ? ORDER BY profile_id'),
      trait: p('SELECT value FROM traits WHERE profile_id = ? AND key = ?'),
      computedOne: p('SELECT value FROM computed_values WHERE profile_id = ? AND key = ?'),
      members: p('SELECT profile_id FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id BETWEEN ? AND ? ORDER BY profile_id'),
      member: p('SELECT 1 FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id = ?'),
      consents: p('SELECT profile_id, granted FROM consents WHERE purpose = ? AND profile_id BETWEEN ? AND ? ORDER BY profile_id'),
      consent: p('SELECT granted FROM consents WHERE profile_id = ? AND purpose = ?'),
      accounts: p('SELECT l.profile_id, t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.profile_id BETWEEN ? AND ? AND l.workspace_id = ? ORDER BY l.profile_id, l.group_id'),
      account: p('SELECT t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.profile_id = ? ORDER BY l.group_id'),
    };
  }

  // --- What writes tell it -------------------------------------------------------------------

  /** A new profile: live, with nothing yet (what it gets next is marked as it is written). */
  created(workspaceId: string, profileId: string): void {
    const ws = this.#workspaces.get(workspaceId);
    if (!ws) return;
    if (ws.listing) ws.listing.created.push(profileId);
    else this.#add(ws, profileId);
    // Rolled back with a tentative run, it is found gone when read again.
    this.#tentative?.read.push([ws.dirty, profileId]);
  }

  /** A profile's value of `key` may have changed; without a key, anything about it may have (merges, splits). */
  touched(profileId: string, key?: string): void {
    for (const [workspaceId, ws] of this.#workspaces) {
      if (key !== undefined) {
        mark(ws, ws.values, key, profileId);
        continue;
      }
      ws.dirty.add(profileId);
      if (ws.dirty.size > tooMany(ws)) this.#workspaces.delete(workspaceId);
      for (const columns of [ws.values, ws.members, ws.consents, ws.accounts] as Array<Map<string, Kept<unknown>>>) for (const k of columns.keys()) mark(ws, columns, k, profileId);
    }
  }

  touchedMember(workspaceId: string, audienceKey: string, profileId: string): void {
    const ws = this.#workspaces.get(workspaceId);
    if (ws) mark(ws, ws.members, audienceKey, profileId);
  }

  touchedConsent(profileId: string, purpose: string): void {
    for (const ws of this.#workspaces.values()) mark(ws, ws.consents, purpose, profileId);
  }

  /** A profile's accounts changed (linked to another). */
  touchedAccounts(workspaceId: string, profileId: string): void {
    const ws = this.#workspaces.get(workspaceId);
    if (ws) for (const k of ws.accounts.keys()) mark(ws, ws.accounts, k, profileId);
  }

  /** Every profile's value of `key` may have changed (a computed trait defined, deleted or recounted over a range). */
  dropValues(key: string): void {
    for (const ws of this.#workspaces.values()) ws.values.delete(key);
  }

  dropMembers(workspaceId: string, audienceKey: string): void {
    this.#workspaces.get(workspaceId)?.members.delete(audienceKey);
  }

  /** An account trait changed for every member of the account. */
  dropAccounts(workspaceId: string, key: string): void {
    this.#workspaces.get(workspaceId)?.accounts.delete(key);
  }

  /** How many columns are kept (loaded in full) and over how many profiles (for metrics). */
  stats(): ColumnStats {
    let [columns, profiles] = [0, 0];
    for (const ws of this.#workspaces.values()) {
      if (ws.listing) continue;
      for (const kept of [ws.values, ws.members, ws.consents, ws.accounts] as Array<Map<string, Kept<unknown>>>) for (const k of kept.values()) if (k.complete) columns++;
      profiles += ws.ids.length;
    }
    return { columns, profiles };
  }

  /** Forgets everything (a rolled back transaction, another connection's commit). */
  clear(): void {
    this.#workspaces.clear();
    this.#tooBig.clear();
  }

  /**
   * Runs `fn` (which the caller rolls back afterwards): what it reads into the columns reflects
   * writes that will not last, so those entries are marked to be read again and columns loaded
   * meanwhile are dropped.
   */
  tentative<T>(fn: () => T, rollback: () => void): T {
    const outer = this.#tentative;
    const scope = (this.#tentative = { read: [] as Array<[Set<string>, string]>, loaded: [] as Array<() => void> });
    try {
      return fn();
    } finally {
      rollback();
      this.#tentative = outer;
      for (const [dirty, profileId] of scope.read) dirty.add(profileId);
      for (const drop of scope.loaded) drop();
      if (outer) outer.read.push(...scope.read), outer.loaded.push(...scope.loaded);
    }
  }

  // --- Reading ---------------------------------------------------------------------------------

  /** Whether every column `needs` reads is loaded in full for the workspace (so reading it costs no scan). */
  has(workspaceId: string, needs: Needs): boolean {
    const ws = this.#workspaces.get(workspaceId);
    if (!ws || ws.listing) return false;
    const complete = <T>(columns: Map<string, Kept<T>>, keys: string[]) => keys.every((k) => columns.get(k)?.complete === true);
    return complete(ws.values, needs.keys) && complete(ws.members, needs.audiences) && complete(ws.consents, needs.consents) && complete(ws.accounts, needs.accounts);
  }

  /** Loads one slice of what `needs` reads (the profile list first); whether there was any to load. */
  warm(workspaceId: string, needs: Needs): boolean {
    if (this.#tooBig.has(workspaceId)) return false;
    const ws = this.#workspace(workspaceId, 1);
    if (!ws) return true;
    return this.#columnsOf(workspaceId, ws, needs).some(([columns, key, reader]) => this.#load(ws, columns, key, reader, 1));
  }

  /**
   * The workspace's profiles with the columns `needs` reads, loading what is missing and reading
   * again what changed; undefined for a workspace too big to keep columns for.
   */
  view(workspaceId: string, needs: Needs): ProfileColumnsView | undefined {
    const ws = this.#workspace(workspaceId, Infinity);
    if (!ws) return undefined;
    this.#refreshLive(ws);
    const read = new Map<AnyColumns, Map<string, unknown[]>>([ws.values, ws.members, ws.consents, ws.accounts].map((c) => [c as AnyColumns, new Map()]));
    for (const [columns, key, reader] of this.#columnsOf(workspaceId, ws, needs)) {
      this.#load(ws, columns, key, reader, Infinity);
      read.get(columns)!.set(key, this.#refresh(ws, columns.get(key)!));
    }
    const of = <T>(columns: Map<string, Kept<T>>) => read.get(columns as AnyColumns) as Map<string, T[]>;
    const [values, members, consents, accounts] = [of(ws.values), of(ws.members), of(ws.consents), of(ws.accounts)];
    return {
      ids: ws.ids,
      live: ws.live,
      slotOf: (profileId) => slotOf(ws, profileId),
      value: (key, slot) => values.get(key)?.[slot],
      member: (key, slot) => members.get(key)?.[slot] === true,
      consent: (purpose, slot) => consents.get(purpose)?.[slot],
      account: (key, slot) => accounts.get(key)?.[slot] ?? [],
    };
  }

  /**
   * The workspace, listing up to `slices` more slices of its live profiles if the list is not
   * complete; undefined while it is not, or when it has more live profiles than kept for.
   */
  #workspace(workspaceId: string, slices: number): Workspace | undefined {
    if (this.#tooBig.has(workspaceId)) return undefined;
    let ws = this.#workspaces.get(workspaceId);
    if (!ws) {
      ws = { ids: [], created: new Map(), live: [], listing: { after: '', created: [] }, values: new Map(), members: new Map(), consents: new Map(), accounts: new Map(), dirty: new Set() };
      this.#workspaces.set(workspaceId, ws);
    }
    for (let n = 0; ws.listing && n < slices; n++) {
      this.#loadedNow(() => this.#workspaces.delete(workspaceId));
      const ids = (this.#s.list!.all(workspaceId, ws.listing.after, this.#slice) as unknown as Array<[string]>).map((r) => r[0]);
      for (const id of ids) ws.ids.push(id), ws.live.push(true);
      if (ws.ids.length > this.#maxProfiles) {
        this.#workspaces.delete(workspaceId);
        this.#tooBig.add(workspaceId);
        return undefined;
      }
      if (ids.length === this.#slice) {
        ws.listing.after = ids[ids.length - 1]!;
        continue;
      }
      // Listed: profiles created meanwhile follow (unless a later slice listed them already).
      const created = ws.listing.created;
      ws.listing = undefined;
      for (const id of created) this.#add(ws, id);
    }
    return ws.listing ? undefined : ws;
  }

  #add(ws: Workspace, profileId: string): void {
    if (slotOf(ws, profileId) !== undefined) return;
    ws.created.set(profileId, ws.ids.length);
    ws.ids.push(profileId);
    ws.live.push(true);
  }

  #loadedNow(drop: () => void): void {
    this.#tentative?.loaded.push(drop);
  }

  /**
   * Reads up to `slices` more slices of a column (creating it if missing); once past the sorted
   * slots, reads the profiles created since one by one and calls it complete. Whether it read any.
   */
  #load<T>(ws: Workspace, columns: Map<string, Kept<T>>, key: string, reader: Reader<T>, slices: number): boolean {
    let kept = columns.get(key);
    if (kept?.complete) return false;
    if (!kept) columns.set(key, (kept = { values: [], dirty: new Set(), loaded: 0, complete: false, one: reader.one }));
    this.#loadedNow(() => columns.delete(key));
    const n = sorted(ws);
    for (let step = 0; step < slices && kept.loaded < n; step++) {
      const to = Math.min(kept.loaded + this.#slice, n);
      reader.range(kept.loaded, to, kept.values);
      kept.loaded = to;
    }
    if (kept.loaded < n) return true;
    for (let slot = n; slot < ws.ids.length; slot++) kept.values[slot] = reader.one(ws.ids[slot]!);
    kept.complete = true;
    return true;
  }

  /** Reads again, for (up to `limit`) profiles marked in `dirty`, their entry of a column; returns the column. */
  #refresh<T>(ws: Workspace, kept: Kept<T>, limit = Infinity): T[] {
    let n = 0;
    for (const profileId of kept.dirty) {
      if (n++ >= limit) break;
      kept.dirty.delete(profileId);
      const slot = slotOf(ws, profileId);
      if (slot === undefined) continue;
      kept.values[slot] = kept.one(profileId);
      this.#tentative?.read.push([kept.dirty, profileId]);
    }
    return kept.values;
  }

  /**
   * Reads again up to `limit` entries that writes marked, so that marks do not pile up while
   * events keep arriving and nobody reads the columns (for the idle stage). How many it read.
   */
  refreshSome(limit: number): number {
    let n = 0;
    for (const ws of this.#workspaces.values()) {
      if (ws.listing) continue;
      if (ws.dirty.size > 0) {
        n += Math.min(ws.dirty.size, limit - n);
        this.#refreshLive(ws, limit - n);
      }
      for (const columns of [ws.values, ws.members, ws.consents, ws.accounts] as AnyColumns[]) {
        for (const kept of columns.values()) {
          if (n >= limit) return n;
          if (!kept.complete || kept.dirty.size === 0) continue;
          const before = kept.dirty.size;
          this.#refresh(ws, kept, limit - n);
          n += before - kept.dirty.size;
        }
      }
    }
    return n;
  }

  #refreshLive(ws: Workspace, limit = Infinity): void {
    let n = 0;
    for (const profileId of ws.dirty) {
      if (n++ >= limit) break;
      ws.dirty.delete(profileId);
      const row = this.#s.profile!.get(profileId) as [string, number] | undefined;
      const slot = slotOf(ws, profileId);
      if (slot !== undefined) ws.live[slot] = row !== undefined && row[1] === 1;
      this.#tentative?.read.push([ws.dirty, profileId]);
    }
  }


  /** Each column `needs` reads: where it is kept, its key, and how to read it. */
  #columnsOf(workspaceId: string, ws: Workspace, needs: Needs): Array<[AnyColumns, string, Reader<unknown>]> {
    const s = this.#s;
    /** Rows of a range query over the profile ids of sorted slots `from` to `to`, put into their slots. */
    const fill = (statement: StatementSync, params: (first: string, last: string) => Array<string | number>, from: number, to: number, put: (slot: number, row: unknown[]) => void) =>
      fillSlots(ws, statement.all(...params(ws.ids[from]!, ws.ids[to - 1]!)) as unknown as unknown[][], from, put);
    // Custom trait overlaid by computed value (computed first, as evaluation reads a profile); hidden keys are computed only.
    const values = (key: string): Reader<unknown> => ({
      range: (from, to, out) => {
        const put = (slot: number, row: unknown[]) => (out[slot] = parseValue(row[1] as string));
        if (!key.startsWith(HIDDEN)) fill(s.traits!, (first, last) => [first, last, key], from, to, put);
        fill(s.computed!, (first, last) => [first, last, key], from, to, put);
      },
      one: (profileId) => {
        const computed = s.computedOne!.get(profileId, key) as [string] | undefined;
        if (computed) return parseValue(computed[0]);
        const trait = key.startsWith(HIDDEN) ? undefined : (s.trait!.get(profileId, key) as [string] | undefined);
        return trait ? parseValue(trait[0]) : undefined;
      },
    });
    const members = (key: string): Reader<boolean> => ({
      range: (from, to, out) => fill(s.members!, (first, last) => [workspaceId, key, first, last], from, to, (slot) => (out[slot] = true)),
      one: (profileId) => s.member!.get(workspaceId, key, profileId) !== undefined,
    });
    const consents = (purpose: string): Reader<boolean | undefined> => ({
      range: (from, to, out) => fill(s.consents!, (first, last) => [purpose, first, last], from, to, (slot, row) => (out[slot] = row[1] === 1)),
      one: (profileId) => {
        const row = s.consent!.get(profileId, purpose) as [number] | undefined;
        return row === undefined ? undefined : row[0] === 1;
      },
    });
    const accounts = (key: string): Reader<unknown[]> => ({
      range: (from, to, out) => fill(s.accounts!, (first, last) => [key, first, last, workspaceId], from, to, (slot, row) => (out[slot] ??= []).push(JSON.parse(row[1] as string) as unknown)),
      one: (profileId) => (s.account!.all(key, profileId) as unknown as Array<[string]>).map(([json]) => JSON.parse(json) as unknown),
    });
    const each = <T>(columns: Map<string, Kept<T>>, keys: string[], reader: (key: string) => Reader<T>) => keys.map((key) => [columns as AnyColumns, key, reader(key) as Reader<unknown>] as [AnyColumns, string, Reader<unknown>]);
    return [...each(ws.values, needs.keys, values), ...each(ws.members, needs.audiences, members), ...each(ws.consents, needs.consents, consents), ...each(ws.accounts, needs.accounts, accounts)];
  }
}

/** A stored JSON value; plain strings, numbers and booleans (most trait values) without the general parser. */
export function parseValue(json: string): unknown {
  const first = json.charCodeAt(0);
  if (first === 34 /* " */ && json.indexOf('\\') < 0) return json.slice(1, -1);
  if ((first >= 48 && first <= 57) || first === 45) {
    const n = Number(json);
    if (!Number.isNaN(n)) return n;
  }
  if (json === 'true') return true;
  if (json === 'false') return false;
  return JSON.parse(json);
}
