/**
 * An ingest thread: judges requests (judge.ts) for the HTTP thread, with credentials and
 * tracking plans read on a connection of its own, so parsing and checking the JSON of one
 * request runs beside the HTTP handling of the next.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createCredentials } from '../access/credentials.ts';
import { movable } from '../bytes.ts';
import { TandemError } from '../errors.ts';
import { openSqliteAccess } from '../store/sqlite/access-store.ts';
import { createJudge } from './judge.ts';
import type { JudgeReply, JudgeRequest, JudgeWorkerOptions } from './judge-pool.ts';

const options = workerData as JudgeWorkerOptions;
const port = parentPort!;
const { access, close } = openSqliteAccess(options.store);
const credentials = createCredentials(access);
const judge = createJudge({
  resolveWriteKey: (key) => credentials.writeKey(key),
  sourcePlan: (sourceId) => credentials.sourcePlan(sourceId),
  policy: options.policy,
  maxBodyBytes: options.maxBodyBytes,
});

port.postMessage({ ready: true } satisfies JudgeReply);

port.on('message', (msg: JudgeRequest) => {
  if (msg.type === 'close') {
    close();
    port.close();
    return;
  }
  const { seq, input } = msg;
  try {
    const judged = judge(input);
    // The JSON is a view of the request's own bytes (perhaps past a BOM), which go back moved;
    // a compressed frame goes in a buffer of its own.
    const body = judged.body.buffer === input.raw.buffer ? judged.body : movable(judged.body);
    port.postMessage({ seq, judged: { ...judged, body } } satisfies JudgeReply, [body.buffer as ArrayBuffer]);
  } catch (err) {
    if (err instanceof TandemError) port.postMessage({ seq, error: { code: err.code, detail: err.detail } } satisfies JudgeReply);
    else port.postMessage({ seq, failure: err instanceof Error ? err.message : String(err) } satisfies JudgeReply);
  }
});
