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
import { storedBody, storedMeta } from '../log-encoding.ts';

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
 * Fills the window from the newest records backwards until they are older than the window
 * (plus an hour of slack for clock steps: ids follow arrival, receivedAt nearly does), then
 * replays them oldest first.
 */
function loadWindow(): number {
  const stop = Date.now() - options.dedupeWindowMs - 3_600_000;
  const recent: Array<{ workspace_id: string; received_at: number; meta: string | Uint8Array }> = [];
  for (const r of db.prepare('SELECT workspace_id, received_at, meta FROM log ORDER BY id DESC').iterate() as Iterable<(typeof recent)[number]>) {
    if (r.received_at < stop) break;
    recent.push(r);
  }
  let ids = 0;
  for (let i = recent.length - 1; i >= 0; i--) ids += dedupe.replay(recent[i]!.workspace_id, recent[i]!.received_at, recent[i]!.meta);
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
  const claims: Array<{ entry: WriterEntry; claimed: number[] }> = [];
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const { seq, entry: e } of batch) {
        const { meta, duplicates, claimed } = dedupe.claimEntry(e.workspaceId, e.receivedAt, e.meta, e.dedupeKeys);
        claims.push({ entry: e, claimed });
        // What the caller did not compress (an ingest thread does), compressed here when it pays.
        const stored = e.bodyEncoding ? { bytes: e.body, encoding: e.bodyEncoding } : storedBody(e.body);
        const storedVerdicts = typeof meta === 'string' ? storedMeta(meta) : meta;
        done.push({ seq, id: Number(insert.run(e.workspaceId, e.sourceId, e.receivedAt, e.kind, stored.bytes, storedVerdicts, stored.encoding).lastInsertRowid), duplicates });
      }
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    for (const { entry: e, claimed } of claims) dedupe.releaseEntry(e.workspaceId, e.meta, e.dedupeKeys, claimed);
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
