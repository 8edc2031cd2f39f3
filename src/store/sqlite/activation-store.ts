import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { immediate } from './database.ts';
import type { Activation, ActivationStore, Delivery, DeliveryChange, DeliveryStatus, DeliveryUpdate, Destination, EventStream, QueuedDelivery } from '../ports.ts';

/** activate.db: destinations, activations and the delivery queue, written by the server's main thread only. */
export const ACTIVATE_MIGRATIONS = [
  `CREATE TABLE destinations (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, purposes TEXT NOT NULL,
     consent_mode TEXT NOT NULL, enabled INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL, UNIQUE (workspace_id, name));
   CREATE TABLE activations (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE, audience_key TEXT NOT NULL,
     traits TEXT NOT NULL, identifiers TEXT NOT NULL, after_change INTEGER NOT NULL, sync_after TEXT, sync_change INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL, UNIQUE (destination_id, audience_key));
   CREATE TABLE deliveries (id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, destination_id TEXT NOT NULL, activation_id TEXT NOT NULL, profile_id TEXT NOT NULL, kind TEXT NOT NULL,
     audience_key TEXT NOT NULL, at INTEGER NOT NULL, cause TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, body TEXT,
     last_status INTEGER, last_error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
   CREATE INDEX deliveries_due ON deliveries (destination_id, next_at, id) WHERE status = 'pending';
   CREATE INDEX deliveries_profile ON deliveries (destination_id, profile_id, id) WHERE status = 'pending';
   CREATE INDEX deliveries_destination ON deliveries (destination_id, id);
   CREATE INDEX deliveries_entries ON deliveries (activation_id, profile_id) WHERE status = 'delivered' AND kind = 'audience_entered';`,
  // Event streams: a workspace's (or a source's) events forwarded to a destination, from a log position.
  `CREATE TABLE event_streams (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL, destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE, source_id TEXT,
     types TEXT NOT NULL, events TEXT NOT NULL, after_log INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);`,
  // Positions in feeds read for all activations (consent changes), and each profile's deliveries per activation in order.
  `CREATE TABLE cursors (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
   CREATE INDEX deliveries_activation_profile ON deliveries (activation_id, profile_id, id);
   DROP INDEX deliveries_entries;`,
];

type DestinationRow = { id: string; workspace_id: string; name: string; url: string; secret: string; purposes: string; consent_mode: Destination['consentMode']; enabled: number; created_at: number; created_by: string };
const toDestination = (r: DestinationRow): Destination => ({
  id: r.id, workspaceId: r.workspace_id, name: r.name, url: r.url, secret: r.secret, purposes: JSON.parse(r.purposes) as string[], consentMode: r.consent_mode, enabled: r.enabled === 1,
  createdAt: r.created_at, createdBy: r.created_by,
});
type ActivationRow = { id: string; workspace_id: string; destination_id: string; audience_key: string; traits: string; identifiers: string; after_change: number; sync_after: string | null; sync_change: number; created_at: number; created_by: string };
const toActivation = (r: ActivationRow): Activation => ({
  id: r.id, workspaceId: r.workspace_id, destinationId: r.destination_id, audienceKey: r.audience_key, traits: JSON.parse(r.traits) as string[], identifiers: JSON.parse(r.identifiers) as string[],
  after: r.after_change, syncAfter: r.sync_after, syncChange: r.sync_change, createdAt: r.created_at, createdBy: r.created_by,
});
type StreamRow = { id: string; workspace_id: string; destination_id: string; source_id: string | null; types: string; events: string; after_log: number; created_at: number; created_by: string };
const toStream = (r: StreamRow): EventStream => ({
  id: r.id, workspaceId: r.workspace_id, destinationId: r.destination_id, sourceId: r.source_id, types: JSON.parse(r.types) as string[], events: JSON.parse(r.events) as string[],
  after: r.after_log, createdAt: r.created_at, createdBy: r.created_by,
});
type DeliveryRow = {
  id: number; workspace_id: string; destination_id: string; activation_id: string; profile_id: string; kind: Delivery['kind']; audience_key: string; at: number; cause: string; status: DeliveryStatus;
  attempts: number; next_at: number; body: string | null; last_status: number | null; last_error: string | null; created_at: number; finished_at: number | null;
};
const toDelivery = (r: DeliveryRow): Delivery => ({
  id: r.id, workspaceId: r.workspace_id, destinationId: r.destination_id, activationId: r.activation_id, profileId: r.profile_id, kind: r.kind, audienceKey: r.audience_key, at: r.at, cause: r.cause,
  status: r.status, attempts: r.attempts, nextAt: r.next_at, body: r.body, lastStatus: r.last_status, lastError: r.last_error, createdAt: r.created_at, finishedAt: r.finished_at,
});

const COLUMNS: Record<string, string> = { status: 'status', attempts: 'attempts', nextAt: 'next_at', body: 'body', lastStatus: 'last_status', lastError: 'last_error', finishedAt: 'finished_at' };

export class SqliteActivationStore implements ActivationStore {
  readonly #db: DatabaseSync;
  readonly #insert;
  readonly #due;
  readonly #updates = new Map<string, StatementSync>();
  readonly #sync: 'full' | 'normal';
  #version = 0;

  /**
   * `sync: 'full'`: changes made through the admin API (destinations, activations, retries of dead
   * letters) are fsynced before they are answered. The queue's own writes never wait for an fsync:
   * after a power loss the newest of them may be missing, which only means some deliveries are
   * sent again (an activation's position and the deliveries it queued roll back together).
   */
  constructor(db: DatabaseSync, options: { sync: 'full' | 'normal' }) {
    this.#db = db;
    this.#sync = options.sync;
    db.exec('PRAGMA synchronous = NORMAL');
    this.#insert = db.prepare(`INSERT INTO deliveries (workspace_id, destination_id, activation_id, profile_id, kind, audience_key, at, cause, status, next_at, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`);
    // The oldest due deliveries of a destination, each the oldest pending one of its profile there.
    this.#due = db.prepare(`SELECT d.* FROM deliveries d WHERE d.destination_id = ? AND d.status = 'pending' AND d.next_at <= ?
      AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.destination_id = d.destination_id AND e.profile_id = d.profile_id AND e.status = 'pending' AND e.id < d.id)
      ORDER BY d.next_at, d.id LIMIT ?`);
  }

  /** One row of a workspace's destinations, activations or event streams, by id. */
  #one<R, T>(table: string, to: (row: R) => T, workspaceId: string, id: string): T | undefined {
    const row = this.#db.prepare(`SELECT * FROM ${table} WHERE workspace_id = ? AND id = ?`).get(workspaceId, id) as R | undefined;
    return row && to(row);
  }

  /** A workspace's rows of one of those tables (every workspace's without one), oldest first. */
  #list<R, T>(table: string, to: (row: R) => T, workspaceId?: string): T[] {
    const order = 'ORDER BY created_at, id';
    const rows = workspaceId === undefined ? this.#db.prepare(`SELECT * FROM ${table} ${order}`).all() : this.#db.prepare(`SELECT * FROM ${table} WHERE workspace_id = ? ${order}`).all(workspaceId);
    return (rows as R[]).map(to);
  }

  /** Durable transactions are the admin API's changes to destinations and activations: they move the version. */
  #transaction<T>(fn: () => T, durable = false): T {
    if (durable) this.#version++;
    const fsync = durable && this.#sync === 'full';
    if (fsync) this.#db.exec('PRAGMA synchronous = FULL');
    try {
      return immediate(this.#db, fn);
    } finally {
      if (fsync) this.#db.exec('PRAGMA synchronous = NORMAL');
    }
  }

  saveDestination(d: Destination): void {
    this.#transaction(() => this.#db
      .prepare(`INSERT INTO destinations (id, workspace_id, name, url, secret, purposes, consent_mode, enabled, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, url = excluded.url, secret = excluded.secret, purposes = excluded.purposes, consent_mode = excluded.consent_mode, enabled = excluded.enabled`)
      .run(d.id, d.workspaceId, d.name, d.url, d.secret, JSON.stringify(d.purposes), d.consentMode, d.enabled ? 1 : 0, d.createdAt, d.createdBy), true);
  }

  destination(workspaceId: string, id: string): Destination | undefined {
    return this.#one('destinations', toDestination, workspaceId, id);
  }

  destinations(workspaceId?: string): Destination[] {
    return this.#list('destinations', toDestination, workspaceId);
  }

  deleteDestination(workspaceId: string, id: string): boolean {
    return this.#transaction(() => {
      const deleted = this.#db.prepare('DELETE FROM destinations WHERE workspace_id = ? AND id = ?').run(workspaceId, id).changes > 0;
      if (deleted) {
        this.#db.prepare('DELETE FROM activations WHERE destination_id = ?').run(id);
        this.#db.prepare('DELETE FROM event_streams WHERE destination_id = ?').run(id);
        this.#db.prepare('DELETE FROM deliveries WHERE destination_id = ?').run(id);
      }
      return deleted;
    }, true);
  }

  #queue(a: Activation, changes: DeliveryChange[], now: number): void {
    for (const c of changes) this.#insert.run(a.workspaceId, a.destinationId, a.id, c.profileId, c.change === 'enter' ? 'audience_entered' : 'audience_exited', a.audienceKey, c.at, c.eventId, now, now);
  }

  createActivation(a: Activation): void {
    this.#transaction(() => {
      this.#db
        .prepare('INSERT INTO activations (id, workspace_id, destination_id, audience_key, traits, identifiers, after_change, sync_after, sync_change, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(a.id, a.workspaceId, a.destinationId, a.audienceKey, JSON.stringify(a.traits), JSON.stringify(a.identifiers), a.after, a.syncAfter, a.syncChange, a.createdAt, a.createdBy);
    }, true);
  }

  /** Moves one of an activation's positions from what `a` says to `to` and queues `changes`, or does nothing if it was not there. */
  #advance(position: 'after_change' | 'sync_after', from: number | string | null, to: number | string | null, a: Activation, changes: DeliveryChange[], now: number): boolean {
    return this.#transaction(() => {
      const moved = this.#db.prepare(`UPDATE activations SET ${position} = ? WHERE id = ? AND ${position} = ?`).run(to, a.id, from).changes > 0;
      if (moved) this.#queue(a, changes, now);
      return moved;
    });
  }

  setActivationFields(workspaceId: string, id: string, fields: Pick<Activation, 'traits' | 'identifiers'>): boolean {
    return this.#transaction(() => this.#db.prepare('UPDATE activations SET traits = ?, identifiers = ? WHERE workspace_id = ? AND id = ?').run(JSON.stringify(fields.traits), JSON.stringify(fields.identifiers), workspaceId, id).changes > 0, true);
  }

  syncMembers(a: Activation, entries: DeliveryChange[], next: string | null, now: number): boolean {
    return this.#advance('sync_after', a.syncAfter, next, a, entries, now);
  }

  /** Deletes an activation or an event stream and cancels its pending deliveries; whether it was there. */
  #deleteSender(table: 'activations' | 'event_streams', workspaceId: string, id: string): boolean {
    return this.#transaction(() => {
      const deleted = this.#db.prepare(`DELETE FROM ${table} WHERE workspace_id = ? AND id = ?`).run(workspaceId, id).changes > 0;
      if (deleted) this.#db.prepare("UPDATE deliveries SET status = 'cancelled', finished_at = ? WHERE activation_id = ? AND status = 'pending'").run(Date.now(), id);
      return deleted;
    }, true);
  }

  createStream(e: EventStream): void {
    this.#transaction(() => {
      this.#db
        .prepare('INSERT INTO event_streams (id, workspace_id, destination_id, source_id, types, events, after_log, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(e.id, e.workspaceId, e.destinationId, e.sourceId, JSON.stringify(e.types), JSON.stringify(e.events), e.after, e.createdAt, e.createdBy);
    }, true);
  }

  stream(workspaceId: string, id: string): EventStream | undefined {
    return this.#one('event_streams', toStream, workspaceId, id);
  }

  streams(workspaceId?: string): EventStream[] {
    return this.#list('event_streams', toStream, workspaceId);
  }

  deleteStream(workspaceId: string, id: string): boolean {
    return this.#deleteSender('event_streams', workspaceId, id);
  }

  enqueueEvents(e: EventStream, events: QueuedDelivery[], upTo: number, now: number): boolean {
    return this.#transaction(() => {
      const moved = this.#db.prepare('UPDATE event_streams SET after_log = ? WHERE id = ? AND after_log = ?').run(upTo, e.id, e.after).changes > 0;
      if (moved) for (const c of events) this.#insert.run(e.workspaceId, e.destinationId, e.id, c.profileId, 'event', '', c.at, c.eventId, now, now);
      return moved;
    });
  }

  activation(workspaceId: string, id: string): Activation | undefined {
    return this.#one('activations', toActivation, workspaceId, id);
  }

  activations(workspaceId?: string): Activation[] {
    return this.#list('activations', toActivation, workspaceId);
  }

  deleteActivation(workspaceId: string, id: string): boolean {
    return this.#deleteSender('activations', workspaceId, id);
  }

  enqueue(a: Activation, changes: DeliveryChange[], upTo: number, now: number): boolean {
    return this.#advance('after_change', a.after, upTo, a, changes, now);
  }

  due(destinationId: string, now: number, limit: number): Delivery[] {
    return (this.#due.all(destinationId, now, limit) as DeliveryRow[]).map(toDelivery);
  }

  updateDeliveries(updates: Array<{ id: number; fields: DeliveryUpdate }>): void {
    if (updates.length === 0) return;
    this.#transaction(() => {
      for (const { id, fields } of updates) {
        const entries = Object.entries(fields);
        const sql = `UPDATE deliveries SET ${entries.map(([k]) => `${COLUMNS[k]} = ?`).join(', ')} WHERE id = ?`;
        let statement = this.#updates.get(sql);
        if (!statement) this.#updates.set(sql, (statement = this.#db.prepare(sql)));
        statement.run(...(entries.map(([, v]) => v) as Array<string | number | null>), id);
      }
    });
  }

  lastKind(activationId: string, profileId: string, withPending: boolean): Delivery['kind'] | undefined {
    const row = this.#db
      .prepare(`SELECT kind FROM deliveries WHERE activation_id = ? AND profile_id = ? AND status IN ('delivered'${withPending ? ", 'pending'" : ''}) ORDER BY id DESC LIMIT 1`)
      .get(activationId, profileId) as { kind: Delivery['kind'] } | undefined;
    return row?.kind;
  }

  cursor(name: string): number {
    return (this.#db.prepare('SELECT position FROM cursors WHERE name = ?').get(name) as { position: number } | undefined)?.position ?? 0;
  }

  queueAtCursor(name: string, from: number, to: number, items: Array<{ activation: Activation; change: DeliveryChange }>, now: number): boolean {
    return this.#transaction(() => {
      const at = this.cursor(name);
      if (at !== from) return false;
      this.#db.prepare('INSERT INTO cursors (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position').run(name, to);
      for (const { activation, change } of items) this.#queue(activation, [change], now);
      return true;
    });
  }

  deliveries(workspaceId: string, destinationId: string, filter: { status?: DeliveryStatus; before: number; limit: number }): Delivery[] {
    const rows =
      filter.status === undefined
        ? this.#db.prepare('SELECT * FROM deliveries WHERE workspace_id = ? AND destination_id = ? AND id < ? ORDER BY id DESC LIMIT ?').all(workspaceId, destinationId, filter.before, filter.limit)
        : this.#db.prepare('SELECT * FROM deliveries WHERE workspace_id = ? AND destination_id = ? AND id < ? AND status = ? ORDER BY id DESC LIMIT ?').all(workspaceId, destinationId, filter.before, filter.status, filter.limit);
    return (rows as DeliveryRow[]).map(toDelivery);
  }

  deliveryCounts(destinationId: string): Partial<Record<DeliveryStatus, number>> {
    const rows = this.#db.prepare('SELECT status, count(*) AS n FROM deliveries WHERE destination_id = ? GROUP BY status').all(destinationId) as Array<{ status: DeliveryStatus; n: number }>;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  retryDead(workspaceId: string, destinationId: string, ids: number[] | undefined, now: number): number {
    const set = "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, finished_at = NULL WHERE workspace_id = ? AND destination_id = ? AND status = 'dead'";
    return this.#transaction(() => {
      if (ids === undefined) return Number(this.#db.prepare(set).run(now, workspaceId, destinationId).changes);
      const one = this.#db.prepare(`${set} AND id = ?`);
      return ids.reduce((n, id) => n + Number(one.run(now, workspaceId, destinationId, id).changes), 0);
    }, true);
  }

  version(): number {
    return this.#version;
  }

  pending(): number {
    return (this.#db.prepare("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'").get() as { n: number }).n;
  }

  close(): void {
    this.#db.close();
  }
}
