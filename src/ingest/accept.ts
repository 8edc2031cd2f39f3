import { TandemError } from '../errors.ts';
import type { Appended, EventLog, LogRecord } from '../store/ports.ts';
import { markDuplicates, STATUS_OF } from '../store/event-meta.ts';
import { decodeStored } from '../store/log-encoding.ts';
import type { JudgeInput, Judged } from './judge.ts';
import type { IngestPressure } from '../ops/ingest-pressure.ts';

/** A decoded entry in memory of its own: its body may be a view of the bytes the log takes. */
const copied = (e: { body: Buffer; meta: string }) => ({ body: Buffer.from(e.body), meta: e.meta });

/** `keepRecord`: the outcome should carry the committed record, bytes included (for live readers). */
export type IngestRequest = Omit<JudgeInput, 'receivedAt'> & { keepRecord?: boolean };

export type IngestOutcome = { accepted: number; flagged: number; quarantined: number; duplicates: number; record?: LogRecord };

export type IngestDeps = {
  log: EventLog;
  /** Decides about a request (judge.ts), in-process or on an ingest thread (judge-pool.ts). */
  judge: (input: JudgeInput) => Judged | Promise<Judged>;
  /** Bytes handed to the judge and not yet answered, counted with the log's towards the limit. */
  judgePendingBytes?: () => number;
  maxPendingBytes: number;
  /** Counts the requests in flight, for the profile stage to give way while ingest is saturated. */
  pressure?: IngestPressure;
  now?: () => number;
};

/**
 * The ingest path: refuse when too much waits for commit, judge the request (decode,
 * authenticate, check each event), append to the log (which marks repeated messageIds as
 * duplicates), and resolve only once the log has committed. Rejections throw a TandemError.
 */
export function createIngest(deps: IngestDeps) {
  const now = deps.now ?? Date.now;

  async function accept(req: IngestRequest): Promise<IngestOutcome> {
    const receivedAt = now();
    if (deps.log.pendingBytes() + (deps.judgePendingBytes?.() ?? 0) > deps.maxPendingBytes) throw new TandemError('rate_limited');
    const { keepRecord, ...input } = req;
    const judged = await deps.judge({ ...input, receivedAt });
    const body = Buffer.from(judged.body.buffer, judged.body.byteOffset, judged.body.byteLength);
    const entry = { workspaceId: judged.workspaceId, sourceId: judged.sourceId, receivedAt, kind: req.kind, meta: judged.meta };
    // Live readers get the JSON, in bytes of their own (the log takes `body` below).
    const kept = keepRecord ? copied(decodeStored(body, judged.bodyEncoding ?? null, judged.meta)) : undefined;
    let appended: Appended;
    try {
      // The bytes are not needed here afterwards (a copy was kept if they are): the log takes them.
      appended = await deps.log.append({ ...entry, body, dedupeKeys: judged.messageIds, ...(judged.bodyEncoding ? { bodyEncoding: judged.bodyEncoding } : {}) }, { moveBody: true });
    } catch (cause) {
      throw new TandemError('unavailable', undefined, { cause });
    }
    const duplicates = new Set(appended.duplicates);
    const outcome: IngestOutcome = { accepted: 0, flagged: 0, quarantined: 0, duplicates: duplicates.size };
    if (kept) outcome.record = { ...entry, body: kept.body, meta: duplicates.size > 0 ? markDuplicates(kept.meta, appended.duplicates) : kept.meta, id: appended.id };
    for (let i = 0; i < judged.statuses.length; i++) {
      if (!duplicates.has(i)) outcome[STATUS_OF[judged.statuses[i]!] as 'accepted' | 'flagged' | 'quarantined']++;
    }
    return outcome;
  }

  const { pressure } = deps;
  if (!pressure) return accept;
  return async function counted(req: IngestRequest): Promise<IngestOutcome> {
    pressure.enter();
    try {
      return await accept(req);
    } finally {
      pressure.leave();
    }
  };
}
