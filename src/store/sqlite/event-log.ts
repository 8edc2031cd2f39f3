import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { EventLog, LogEntry, LogRecord } from '../ports.ts';
import type { SqliteOptions } from './database.ts';
import type { WriterReply, WriterRequest } from './log-writer.ts';

type Pending = { resolve: (ids: number[]) => void; reject: (err: unknown) => void; bytes: number };
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
 * verdicts. Appends made in one turn of the event loop travel together to the writer thread
 * (log-writer.ts), which commits them with whatever else queued meanwhile: one fsync
 * acknowledges them all. Reads use the caller's connection (WAL lets them run beside writes).
 */
export class SqliteEventLog implements EventLog {
  readonly #options: SqliteOptions;
  readonly #backward: StatementSync;
  readonly #forward: StatementSync;
  readonly #since: StatementSync;
  readonly #get: StatementSync;
  readonly #onCommit: (entries: number, seconds: number) => void;
  readonly #pending = new Map<number, Pending>();
  #worker: Worker | undefined;
  #outbox: LogEntry[] = [];
  #outboxWaiters: Array<{ resolve: (id: number) => void; reject: (err: unknown) => void }> = [];
  #seq = 0;
  #pendingBytes = 0;
  #closed = false;

  constructor(db: DatabaseSync, options: SqliteOptions, onCommit: (entries: number, seconds: number) => void = () => {}) {
    this.#options = options;
    this.#onCommit = onCommit;
    this.#backward = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id < ? ORDER BY id DESC LIMIT ?');
    this.#forward = db.prepare('SELECT * FROM log WHERE id > ? ORDER BY id LIMIT ?');
    this.#since = db.prepare('SELECT id, workspace_id, received_at, meta FROM log WHERE received_at >= ? ORDER BY id');
    this.#get = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id = ?');
  }

  #writer(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./log-writer.ts', import.meta.url), { workerData: this.#options });
    worker.on('message', (reply: WriterReply) => {
      if ('closed' in reply) return;
      const p = this.#pending.get(reply.seq);
      if (!p) return;
      this.#pending.delete(reply.seq);
      this.#pendingBytes -= p.bytes;
      if ('error' in reply) p.reject(new Error(reply.error));
      else {
        this.#onCommit(reply.ids.length, reply.seconds);
        p.resolve(reply.ids);
      }
    });
    const fail = (err: unknown) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      this.#pendingBytes = 0;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`log writer exited with ${code}`)));
    this.#worker = worker;
    return worker;
  }

  append(entry: LogEntry): Promise<number> {
    if (this.#closed) return Promise.reject(new Error('event log closed'));
    return new Promise((resolve, reject) => {
      if (this.#outbox.length === 0) setImmediate(() => this.#send());
      this.#outbox.push(entry);
      this.#outboxWaiters.push({ resolve, reject });
      this.#pendingBytes += entry.body.length;
    });
  }

  #send(): void {
    const entries = this.#outbox;
    const waiters = this.#outboxWaiters;
    this.#outbox = [];
    this.#outboxWaiters = [];
    if (entries.length === 0) return;
    const seq = ++this.#seq;
    const bytes = entries.reduce((n, e) => n + e.body.length, 0);
    this.#pending.set(seq, {
      bytes,
      resolve: (ids) => waiters.forEach((w, i) => w.resolve(ids[i]!)),
      reject: (err) => waiters.forEach((w) => w.reject(err)),
    });
    try {
      this.#writer().postMessage({ type: 'append', seq, entries } satisfies WriterRequest);
    } catch (err) {
      this.#pending.delete(seq);
      this.#pendingBytes -= bytes;
      waiters.forEach((w) => w.reject(err));
    }
  }

  pendingBytes(): number {
    return this.#pendingBytes;
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

  /** Commits what is queued, then stops the writer; appends after this are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#send();
    const worker = this.#worker;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      worker.on('message', (reply: WriterReply) => {
        if ('closed' in reply) resolve();
      });
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'close' } satisfies WriterRequest);
    });
    this.#worker = undefined;
    await worker.terminate();
  }
}
