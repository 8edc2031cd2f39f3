import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { Needs } from '../../audiences/definition.ts';
import type { ProfileColumnsView } from '../../profiles/ports.ts';

/** Hidden computed keys (behind audience event conditions) are never custom traits. */
const HIDDEN = '__';

/** One kept column: a value per slot, and the profiles whose value may have changed since it was read. */
type Kept<T> = { values: T[]; dirty: Set<string> };

/**
 * A workspace's profiles, each at a slot, and the columns kept for them. The first `sorted` slots
 * hold the profiles live when it was loaded, in id order (found by binary search, no map of a
 * million strings); profiles created since follow, found through `created`.
 */
type Workspace = {
  ids: string[];
  sorted: number;
  created: Map<string, number>;
  live: boolean[];
  values: Map<string, Kept<unknown>>;
  members: Map<string, Kept<boolean>>;
  consents: Map<string, Kept<boolean | undefined>>;
  accounts: Map<string, Kept<unknown[]>>;
  /** Profiles whose liveness may have changed (merged away). */
  dirty: Set<string>;
};

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
function slotOf(ws: Workspace, profileId: string): number | undefined {
  let [lo, hi] = [0, ws.sorted];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ws.ids[mid]! < profileId) lo = mid + 1;
    else hi = mid;
  }
  return lo < ws.sorted && ws.ids[lo] === profileId ? lo : ws.created.get(profileId);
}

/**
 * Puts rows of (profile id, …) in profile id order into their slots: a cursor over the sorted
 * slots, a look-up only for profiles created since the load.
 */
function fillSlots(ws: Workspace, rows: unknown[][], put: (slot: number, row: unknown[]) => void): void {
  let i = 0;
  for (const row of rows) {
    const profileId = row[0] as string;
    while (i < ws.sorted && ws.ids[i]! < profileId) i++;
    const slot = i < ws.sorted && ws.ids[i] === profileId ? i : ws.created.get(profileId);
    if (slot !== undefined) put(slot, row);
  }
}

/**
 * What audiences read about every live profile, kept in memory by the profile stage's writer so
 * that previews and sweeps over all profiles touch no SQL rows: per workspace an index of live
 * profiles, and per key, audience, consent purpose or account trait a column of values by slot.
 * Columns are loaded on first use (one scan each) and kept exact without re-reading them: every
 * write marks the profiles and keys it touched, and those entries are read again, one profile at
 * a time, before the column is next used. A rollback forgets everything read inside it (see
 * `tentative` and `clear`). Memory: about 100 bytes per live profile for the index, plus 8 per
 * profile per column.
 */
export class ProfileColumns {
  readonly #s: Record<string, StatementSync>;
  readonly #workspaces = new Map<string, Workspace>();
  /** Inside a tentative run: what was read then, to be read again once it is rolled back. */
  #tentative: { read: Array<[Set<string>, string]>; loaded: Array<() => void> } | undefined;

  constructor(db: DatabaseSync) {
    const p = (sql: string) => {
      const s = db.prepare(sql);
      s.setReturnArrays(true);
      return s;
    };
    this.#s = {
      // Every column query returns rows in profile id order (that of the primary key or index it reads).
      live: p('SELECT id FROM profiles WHERE workspace_id = ? AND merged_into IS NULL ORDER BY id'),
      profile: p('SELECT workspace_id, merged_into IS NULL FROM profiles WHERE id = ?'),
      traits: p('SELECT profile_id, value FROM traits WHERE key = ? ORDER BY profile_id'),
      computed: p('SELECT profile_id, value FROM computed_values WHERE key = ? ORDER BY profile_id'),
      trait: p('SELECT value FROM traits WHERE profile_id = ? AND key = ?'),
      computedOne: p('SELECT value FROM computed_values WHERE profile_id = ? AND key = ?'),
      members: p('SELECT profile_id FROM audience_members WHERE workspace_id = ? AND audience_key = ? ORDER BY profile_id'),
      member: p('SELECT 1 FROM audience_members WHERE workspace_id = ? AND audience_key = ? AND profile_id = ?'),
      consents: p('SELECT profile_id, granted FROM consents WHERE purpose = ? ORDER BY profile_id'),
      consent: p('SELECT granted FROM consents WHERE profile_id = ? AND purpose = ?'),
      accounts: p('SELECT l.profile_id, t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.workspace_id = ? ORDER BY l.profile_id, l.group_id'),
      account: p('SELECT t.value FROM account_links l JOIN account_traits t ON t.workspace_id = l.workspace_id AND t.group_id = l.group_id AND t.key = ? WHERE l.profile_id = ? ORDER BY l.group_id'),
    };
  }

  // --- What writes tell it -------------------------------------------------------------------

  /** A new profile: live, with nothing yet (what it gets next is marked as it is written). */
  created(workspaceId: string, profileId: string): void {
    const ws = this.#workspaces.get(workspaceId);
    if (!ws) return;
    this.#add(ws, profileId);
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

  /** How many columns are kept and over how many profiles (for metrics). */
  stats(): { columns: number; profiles: number } {
    let [columns, profiles] = [0, 0];
    for (const ws of this.#workspaces.values()) {
      columns += ws.values.size + ws.members.size + ws.consents.size + ws.accounts.size;
      profiles += ws.ids.length;
    }
    return { columns, profiles };
  }

  /** Forgets everything (a rolled back transaction, another connection's commit). */
  clear(): void {
    this.#workspaces.clear();
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

  /** Whether every column `needs` reads is loaded for the workspace (so reading it costs no scan). */
  has(workspaceId: string, needs: Needs): boolean {
    const ws = this.#workspaces.get(workspaceId);
    return ws !== undefined && needs.keys.every((k) => ws.values.has(k)) && needs.audiences.every((k) => ws.members.has(k)) && needs.consents.every((p) => ws.consents.has(p)) && needs.accounts.every((k) => ws.accounts.has(k));
  }

  /** The workspace's profiles with the columns `needs` reads, loading what is missing and reading again what changed. */
  view(workspaceId: string, needs: Needs): ProfileColumnsView {
    const ws = this.#workspace(workspaceId);
    this.#refreshLive(ws);
    const values = needs.keys.map((k) => [k, this.#values(ws, k)] as const);
    const members = needs.audiences.map((k) => [k, this.#members(ws, workspaceId, k)] as const);
    const consents = needs.consents.map((p) => [p, this.#consents(ws, p)] as const);
    const accounts = needs.accounts.map((k) => [k, this.#accounts(ws, workspaceId, k)] as const);
    const byKey = <T>(list: ReadonlyArray<readonly [string, T[]]>) => new Map(list.map(([k, v]) => [k, v]));
    const [v, m, c, a] = [byKey(values), byKey(members), byKey(consents), byKey(accounts)];
    return {
      ids: ws.ids,
      live: ws.live,
      slotOf: (profileId) => slotOf(ws, profileId),
      value: (key, slot) => v.get(key)?.[slot],
      member: (key, slot) => m.get(key)?.[slot] === true,
      consent: (purpose, slot) => c.get(purpose)?.[slot],
      account: (key, slot) => a.get(key)?.[slot] ?? [],
    };
  }

  #workspace(workspaceId: string): Workspace {
    let ws = this.#workspaces.get(workspaceId);
    if (ws) return ws;
    const ids = (this.#s.live!.all(workspaceId) as unknown as Array<[string]>).map((r) => r[0]);
    ws = { ids, sorted: ids.length, created: new Map(), live: new Array<boolean>(ids.length).fill(true), values: new Map(), members: new Map(), consents: new Map(), accounts: new Map(), dirty: new Set() };
    this.#workspaces.set(workspaceId, ws);
    this.#loadedNow(() => this.#workspaces.delete(workspaceId));
    return ws;
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

  /** Reads again, for each profile marked in `dirty`, its entry of a column; returns the column. */
  #refresh<T>(ws: Workspace, kept: Kept<T>, read: (profileId: string) => T): T[] {
    if (kept.dirty.size === 0) return kept.values;
    for (const profileId of kept.dirty) {
      const slot = slotOf(ws, profileId);
      if (slot === undefined) continue;
      kept.values[slot] = read(profileId);
      this.#tentative?.read.push([kept.dirty, profileId]);
    }
    kept.dirty.clear();
    return kept.values;
  }

  #refreshLive(ws: Workspace): void {
    for (const profileId of ws.dirty) {
      const row = this.#s.profile!.get(profileId) as [string, number] | undefined;
      const slot = slotOf(ws, profileId);
      if (slot !== undefined) ws.live[slot] = row !== undefined && row[1] === 1;
      this.#tentative?.read.push([ws.dirty, profileId]);
    }
    ws.dirty.clear();
  }

  #load<T>(ws: Workspace, columns: Map<string, Kept<T>>, key: string, fill: (values: T[]) => void): T[] {
    const existing = columns.get(key);
    if (existing) return existing.values;
    const values = new Array<T>(ws.ids.length);
    fill(values);
    columns.set(key, { values, dirty: new Set() });
    this.#loadedNow(() => columns.delete(key));
    return values;
  }

  /** Custom trait overlaid by computed value (computed first, as evaluation reads a profile); hidden keys are computed only. */
  #values(ws: Workspace, key: string): unknown[] {
    const s = this.#s;
    this.#load(ws, ws.values, key, (values) => {
      const put = (slot: number, row: unknown[]) => (values[slot] = parseValue(row[1] as string));
      if (!key.startsWith(HIDDEN)) fillSlots(ws, s.traits!.all(key) as unknown as unknown[][], put);
      fillSlots(ws, s.computed!.all(key) as unknown as unknown[][], put);
    });
    return this.#refresh(ws, ws.values.get(key)!, (profileId) => {
      const computed = s.computedOne!.get(profileId, key) as [string] | undefined;
      if (computed) return parseValue(computed[0]);
      const trait = key.startsWith(HIDDEN) ? undefined : (s.trait!.get(profileId, key) as [string] | undefined);
      return trait ? parseValue(trait[0]) : undefined;
    });
  }

  #members(ws: Workspace, workspaceId: string, key: string): boolean[] {
    const s = this.#s;
    this.#load(ws, ws.members, key, (values) => fillSlots(ws, s.members!.all(workspaceId, key) as unknown as unknown[][], (slot) => (values[slot] = true)));
    return this.#refresh(ws, ws.members.get(key)!, (profileId) => s.member!.get(workspaceId, key, profileId) !== undefined);
  }

  #consents(ws: Workspace, purpose: string): Array<boolean | undefined> {
    const s = this.#s;
    this.#load(ws, ws.consents, purpose, (values) => fillSlots(ws, s.consents!.all(purpose) as unknown as unknown[][], (slot, row) => (values[slot] = row[1] === 1)));
    return this.#refresh(ws, ws.consents.get(purpose)!, (profileId) => {
      const row = s.consent!.get(profileId, purpose) as [number] | undefined;
      return row === undefined ? undefined : row[0] === 1;
    });
  }

  #accounts(ws: Workspace, workspaceId: string, key: string): unknown[][] {
    const s = this.#s;
    this.#load(ws, ws.accounts, key, (values) => fillSlots(ws, s.accounts!.all(key, workspaceId) as unknown as unknown[][], (slot, row) => (values[slot] ??= []).push(JSON.parse(row[1] as string) as unknown)));
    return this.#refresh(ws, ws.accounts.get(key)!, (profileId) => (s.account!.all(key, profileId) as unknown as Array<[string]>).map(([json]) => JSON.parse(json) as unknown));
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
