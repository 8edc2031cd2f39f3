import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { movable } from '../../bytes.ts';
import type { AppendOptions, Appended, EventLog, LogEntry, LogRecord } from '../ports.ts';
import type { WriterOptions, WriterReply, WriterRequest } from './log-writer.ts';
import { decodeStored, ONE_FRAME, verdictsOf } from '../log-encoding.ts';

/**
 * The columns a reader of verdicts alone selects: a row of one frame holds its verdicts with its
 * bytes (log-encoding.ts), so its body too; other rows' bodies are left out (NULL).
 */
export const VERDICT_COLUMNS = `meta, encoding, CASE WHEN encoding = '${ONE_FRAME}' THEN body END AS body`;

type Pending = { resolve: (appended: Appended) => void; reject: (err: unknown) => void; bytes: number };
type Row = { id: number; workspace_id: string; source_id: string; received_at: number; kind: string; body: Uint8Array; meta: string | Uint8Array; encoding: string | null };

const toRecord = (r: Row): LogRecord => ({ id: r.id, workspaceId: r.workspace_id, sourceId: r.source_id, receivedAt: r.received_at, kind: r.kind, ...decodeStored(r.body, r.encoding, r.meta) });

/** Reads of the embedded event log, on the caller's connection (WAL lets them run beside writes). */
export class SqliteLogReader {
  readonly #backward: StatementSync;
  readonly #forward: StatementSync;
  readonly #verdicts: StatementSync;
  readonly #get: StatementSync;
  readonly #last: StatementSync;

  constructor(db: DatabaseSync) {
    this.#last = db.prepare('SELECT coalesce(max(id), 0) AS id FROM log');
    this.#backward = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id < ? ORDER BY id DESC LIMIT ?');
    this.#forward = db.prepare('SELECT * FROM log WHERE id > ? ORDER BY id LIMIT ?');
    this.#verdicts = db.prepare(`SELECT id, workspace_id, source_id, received_at, kind, ${VERDICT_COLUMNS} FROM log WHERE id > ? ORDER BY id LIMIT ?`);
    this.#get = db.prepare('SELECT * FROM log WHERE workspace_id = ? AND id = ?');
  }

  readBackward(workspaceId: string, beforeId: number, limit: number): LogRecord[] {
    return (this.#backward.all(workspaceId, beforeId, limit) as Row[]).map(toRecord);
  }

  readForward(afterId: number, limit: number): LogRecord[] {
    return (this.#forward.all(afterId, limit) as Row[]).map(toRecord);
  }

  readVerdictsForward(afterId: number, limit: number): Array<Omit<LogRecord, 'body'>> {
    return (this.#verdicts.all(afterId, limit) as Array<Omit<Row, 'body'> & { body: Uint8Array | null }>).map((r) => ({ id: r.id, workspaceId: r.workspace_id, sourceId: r.source_id, receivedAt: r.received_at, kind: r.kind, meta: verdictsOf(r.body, r.encoding, r.meta) }));
  }

  lastId(): number {
    return (this.#last.get() as { id: number }).id;
  }

  get(workspaceId: string, id: number): LogRecord | undefined {
    const row = this.#get.get(workspaceId, id) as Row | undefined;
    return row && toRecord(row);
  }
}

export type EventLogHooks = {
  onCommit?: (entries: number, seconds: number) => void;
  /** The writer loaded its dedupe window (how many ids, how long it took) and commits from now on. */
  onLoaded?: (ids: number, seconds: number) => void;
};

/**
 * The embedded event log: one row per accepted request, holding its bytes (compressed, see
 * log-encoding.ts) and ingest's verdicts. Each append is posted at once to the writer thread (log-writer.ts), which commits
 * it with whatever else queued meanwhile: one fsync acknowledges them all.
 */
export class SqliteEventLog extends SqliteLogReader implements EventLog {
  readonly #options: WriterOptions;
  readonly #hooks: EventLogHooks;
  readonly #pending = new Map<number, Pending>();
  #worker: Worker | undefined;
  #loaded = false;
  #seq = 0;
  #pendingBytes = 0;
  #closed = false;

  constructor(db: DatabaseSync, options: WriterOptions, hooks: EventLogHooks = {}) {
    super(db);
    this.#options = options;
    this.#hooks = hooks;
  }

  /**
   * Starts the writer now rather than at the first append: it loads the dedupe window from the
   * log (seconds for millions of ids), during which appends wait; `loaded()` says when it is done.
   */
  open(): void {
    if (!this.#closed) this.#writer();
  }

  /** Whether the writer has loaded its dedupe window, so appends are committed without waiting for it. */
  loaded(): boolean {
    return this.#loaded;
  }

  #writer(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./log-writer.ts', import.meta.url), { workerData: this.#options });
    const settle = (seq: number): Pending | undefined => {
      const p = this.#pending.get(seq);
      if (!p) return undefined;
      this.#pending.delete(seq);
      this.#pendingBytes -= p.bytes;
      return p;
    };
    worker.on('message', (reply: WriterReply) => {
      if (reply.type === 'committed') {
        this.#hooks.onCommit?.(reply.appended.length, reply.seconds);
        for (const a of reply.appended) settle(a.seq)?.resolve({ id: a.id, duplicates: a.duplicates });
      } else if (reply.type === 'failed') {
        for (const seq of reply.seqs) settle(seq)?.reject(new Error(reply.error));
      } else if (reply.type === 'ready') {
        this.#loaded = true;
        this.#hooks.onLoaded?.(reply.ids, reply.seconds);
      }
    });
    const fail = (err: unknown) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#loaded = false;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      this.#pendingBytes = 0;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`log writer exited with ${code}`)));
    this.#worker = worker;
    return worker;
  }

  /** Posts at once, so the writer commits while this thread parses the next request. */
  append(entry: LogEntry, options: AppendOptions = {}): Promise<Appended> {
    if (this.#closed) return Promise.reject(new Error('event log closed'));
    return new Promise((resolve, reject) => {
      const seq = ++this.#seq;
      const bytes = entry.body.length;
      this.#pending.set(seq, { bytes, resolve, reject });
      this.#pendingBytes += bytes;
      try {
        // The bytes are moved, not cloned, to the writer: the caller's own memory when it gave
        // it up, else a private copy (a memcpy instead of structured-clone serialisation).
        const body = movable(entry.body, options.moveBody);
        this.#writer().postMessage({ type: 'append', seq, entry: { ...entry, body } } satisfies WriterRequest, [body.buffer as ArrayBuffer]);
      } catch (err) {
        this.#pending.delete(seq);
        this.#pendingBytes -= bytes;
        reject(err);
      }
    });
  }

  pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Commits what is queued, then stops the writer; appends after this are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      worker.on('message', (reply: WriterReply) => {
        if (reply.type === 'closed') resolve();
      });
      worker.once('exit', () => resolve());
      worker.postMessage({ type: 'close' } satisfies WriterRequest);
    });
    this.#worker = undefined;
    await worker.terminate();
  }
}
