/**
 * The event log's writer thread. It owns the only connection that appends to the log, so that
 * inserting request bodies and waiting for fsync happen beside the thread that parses HTTP.
 * Appends that queue up while a commit runs are written together in the next one (group commit).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDatabase, type SqliteOptions } from './database.ts';

export type WriterEntry = { workspaceId: string; sourceId: string; receivedAt: number; kind: string; body: Uint8Array; meta: string };
export type WriterRequest = { type: 'append'; seq: number; entries: WriterEntry[] } | { type: 'close' };
export type WriterReply = { seq: number; ids: number[]; seconds: number } | { seq: number; error: string } | { closed: true };

const port = parentPort!;
const db = openDatabase(workerData as SqliteOptions);
const insert = db.prepare('INSERT INTO log (workspace_id, source_id, received_at, kind, body, meta) VALUES (?, ?, ?, ?, ?, ?)');
let queue: Array<Extract<WriterRequest, { type: 'append' }>> = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  const started = performance.now();
  const ids: number[][] = [];
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      for (const req of batch) ids.push(req.entries.map((e) => Number(insert.run(e.workspaceId, e.sourceId, e.receivedAt, e.kind, e.body, e.meta).lastInsertRowid)));
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    for (const req of batch) port.postMessage({ seq: req.seq, error } satisfies WriterReply);
    return;
  }
  const seconds = (performance.now() - started) / 1000;
  for (let i = 0; i < batch.length; i++) port.postMessage({ seq: batch[i]!.seq, ids: ids[i]!, seconds } satisfies WriterReply);
}

port.on('message', (msg: WriterRequest) => {
  if (msg.type === 'close') {
    flush();
    db.close();
    port.postMessage({ closed: true } satisfies WriterReply);
    return;
  }
  queue.push(msg);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
});
