/**
 * The event log's writer thread. It owns the only connection that appends to the log and the
 * dedupe window, so that inserting request bodies, deduplicating and waiting for fsync happen
 * beside the thread that parses HTTP. Appends that queue up while a commit runs are written
 * together in the next one (group commit).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DedupeWindow } from '../dedupe-window.ts';
import type { LogEntry } from '../ports.ts';
import { openDatabase, type SqliteOptions } from './database.ts';
import { decodeStored, storedEntry, verdictsOf } from '../log-encoding.ts';
import { VERDICT_COLUMNS } from './event-log.ts';

export type WriterOptions = SqliteOptions & { dedupeWindowMs: number };
/** A log entry as it reaches this thread: its bytes were transferred as a plain Uint8Array. */
export type WriterEntry = Omit<LogEntry, 'body'> & { body: Uint8Array };
export type WriterRequest = { type: 'append'; seq: number; entry: WriterEntry } | { type: 'close' };
/** One reply per commit, whatever it held: a message per append cost the HTTP thread a wake-up each. */
export type WriterReply =
  | { type: 'committed'; seconds: number; appended: Array<{ seq: number; id: number; duplicates: number[] }> }
  | { type: 'failed'; seqs: number[]; error: string }
  /** The dedupe window is loaded: appends are committed from now on. */
  | { type: 'ready'; ids: number; seconds: number }
  | { type: 'closed' };

const options = workerData as WriterOptions;
const port = parentPort!;
const db = openDatabase(options);
const insert = db.prepare('INSERT INTO log (workspace_id, source_id, received_at, kind, body, meta, encoding) VALUES (?, ?, ?, ?, ?, ?, ?)');
const dedupe = new DedupeWindow(options.dedupeWindowMs);
const loadStarted = performance.now();
const loaded = loadWindow();
/**
 * Fills the window from the log: finds the oldest record of the newest run received within the
 * window (plus an hour of slack for clock steps: ids follow arrival, receivedAt nearly does),
 * walking back over ids and times only, then replays from there oldest first, one record at a
 * time (a record's verdicts may have to be decompressed with its bytes, see log-encoding.ts).
 */
function loadWindow(): number {
  const stop = Date.now() - options.dedupeWindowMs - 3_600_000;
  let first: number | undefined;
  for (const r of db.prepare('SELECT id, received_at FROM log ORDER BY id DESC').iterate() as Iterable<{ id: number; received_at: number }>) {
    if (r.received_at < stop) break;
    first = r.id;
  }
  if (first === undefined) return 0;
  type Row = { workspace_id: string; received_at: number; body: Uint8Array | null; encoding: string | null; meta: string | Uint8Array };
  const rows = db.prepare(`SELECT workspace_id, received_at, ${VERDICT_COLUMNS} FROM log WHERE id >= ? ORDER BY id`);
  let ids = 0;
  for (const r of rows.iterate(first) as Iterable<Row>) ids += dedupe.replay(r.workspace_id, r.received_at, verdictsOf(r.body, r.encoding, r.meta));
  return ids;
}

let queue: Array<{ seq: number; entry: WriterEntry }> = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  const started = performance.now();
  const done: Array<{ seq: number; id: number; duplicates: number[] }> = [];
  const claims: Array<{ entry: WriterEntry; verdicts: () => string; claimed: number[] }> = [];
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const { seq, entry: e } of batch) {
        // Decoded when needed: ids to read from the verdicts, repeats to mark, or an entry to store.
        let decodedOnce: { body: Buffer; meta: string } | undefined;
        const decoded = () => (decodedOnce ??= decodeStored(e.body, e.bodyEncoding ?? null, e.meta));
        const verdicts = () => decoded().meta;
        const { marked, duplicates, claimed } = dedupe.claimEntry(e.workspaceId, e.receivedAt, verdicts, e.dedupeKeys);
        claims.push({ entry: e, verdicts, claimed });
        // What the caller did not store (an ingest thread does), stored here; again with repeats marked.
        const stored = marked === undefined && e.bodyEncoding ? { body: e.body, encoding: e.bodyEncoding, meta: e.meta } : storedEntry(decoded().body, marked ?? verdicts());
        done.push({ seq, id: Number(insert.run(e.workspaceId, e.sourceId, e.receivedAt, e.kind, stored.body, stored.meta, stored.encoding).lastInsertRowid), duplicates });
      }
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    for (const { entry: e, verdicts, claimed } of claims) dedupe.releaseEntry(e.workspaceId, verdicts, e.dedupeKeys, claimed);
    const error = err instanceof Error ? err.message : String(err);
    port.postMessage({ type: 'failed', seqs: batch.map((b) => b.seq), error } satisfies WriterReply);
    return;
  }
  port.postMessage({ type: 'committed', seconds: (performance.now() - started) / 1000, appended: done } satisfies WriterReply);
}

port.on('message', (msg: WriterRequest) => {
  if (msg.type === 'close') {
    flush();
    db.close();
    port.postMessage({ type: 'closed' } satisfies WriterReply);
    return;
  }
  queue.push(msg);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
port.postMessage({ type: 'ready', ids: loaded, seconds: (performance.now() - loadStarted) / 1000 } satisfies WriterReply);
