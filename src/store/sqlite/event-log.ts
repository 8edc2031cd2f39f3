import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { EventLog, LogEntry, LogRecord } from '../ports.ts';

type Pending = { entry: LogEntry; resolve: (id: number) => void; reject: (err: unknown) => void };
type Row = { id: number; workspace_id: string; source_id: string; received_at: number; kind: string; body: Uint8Array; meta: string };

const toRecord = (r: Row): LogRecord => ({
  id: r.id,
  workspaceId: r.workspace_id,
  sourceId: r.source_id,
  receivedAt: r.received_at,
  kind: r.kind,
  body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength),
  meta: r.meta,
});

/**
 * The embedded event log: one row per accepted request, holding its raw bytes and ingest's
 * verdicts. Appends that arrive while a commit is being prepared are written in one
 * transaction (group commit), so one fsync acknowledges them all.
 */
export class SqliteEventLog implements EventLog {
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #backward: StatementSync;
  readonly #forward: StatementSync;
  readonly #since: StatementSync;
  readonly #get: StatementSync;
  readonly #onCommit: (events: number, seconds: number) => void;
  #queue: Pending[] = [];
  #queuedBytes = 0;
  #scheduled = false;
  #closed = false;

  constructor(db: DatabaseSync, onCommit: (entries: number, seconds: number) => void = () => {}) {
    this.#db = db;
    this.#onCommit = onCommit;
    this.#insert = db.prepare('INSERT INTO log (workspace_id, source_id, received_at, kind, body, meta) VALUES (?, ?, ?, ?, ?, ?)');
    this.#backward = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id < ? ORDER BY id DESC LIMIT ?');
    this.#forward = db.prepare('SELECT * FROM log WHERE id > ? ORDER BY id LIMIT ?');
    this.#since = db.prepare('SELECT id, workspace_id, received_at, meta FROM log WHERE received_at >= ? ORDER BY id');
    this.#get = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id = ?');
  }

  append(entry: LogEntry): Promise<number> {
    if (this.#closed) return Promise.reject(new Error('event log closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ entry, resolve, reject });
      this.#queuedBytes += entry.body.length;
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  pendingBytes(): number {
    return this.#queuedBytes;
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (batch.length === 0) return;
    const started = performance.now();
    const ids: number[] = [];
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        for (const { entry: e } of batch) {
          ids.push(Number(this.#insert.run(e.workspaceId, e.sourceId, e.receivedAt, e.kind, e.body, e.meta).lastInsertRowid));
        }
        this.#db.exec('COMMIT');
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.#onCommit(batch.length, (performance.now() - started) / 1000);
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(ids[i]!);
  }

  readBackward(workspaceId: string, beforeId: number, limit: number): LogRecord[] {
    return (this.#backward.all(workspaceId, beforeId, limit) as Row[]).map(toRecord);
  }

  readForward(afterId: number, limit: number): LogRecord[] {
    return (this.#forward.all(afterId, limit) as Row[]).map(toRecord);
  }

  *metaSince(since: number): Iterable<Pick<LogRecord, 'id' | 'workspaceId' | 'receivedAt' | 'meta'>> {
    for (const r of this.#since.iterate(since) as Iterable<Row>) yield { id: r.id, workspaceId: r.workspace_id, receivedAt: r.received_at, meta: r.meta };
  }

  get(workspaceId: string, id: number): LogRecord | undefined {
    const row = this.#get.get(workspaceId, id) as Row | undefined;
    return row && toRecord(row);
  }

  /** Commits what is queued, then refuses new appends. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#queue.length > 0) this.#flush();
  }
}
