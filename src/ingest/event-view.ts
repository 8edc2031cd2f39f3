import type { EventLog, LogRecord } from '../store/ports.ts';
import { decodeMeta, STATUS_OF, type EventMeta, type MetaTuple } from '../store/event-meta.ts';
import { isObject, type Json } from '../json.ts';

/** One event as the admin API, the live stream and later pipeline stages see it. */
export type StoredEvent = {
  id: string;
  messageId: string;
  type: string;
  event: string | null;
  userId: string | null;
  anonymousId: string | null;
  status: EventMeta['status'];
  reasons: string[];
  sourceId: string;
  receivedAt: string;
  timestamp: string;
  payload: Record<string, unknown>;
};


/** Fields the server owns: whatever the client sent under these names is replaced or dropped. */
const SERVER_OWNED = ['writeKey', 'receivedAt', 'workspaceId', 'sourceId', 'projectId'];

/** An event's id: its log record and its place in the record's body. */
export const eventId = (recordId: number, index: number): string => `${recordId}.${index}`;

/** The events of one log record whose verdicts pass `keep` and whose index is below `below`, in body order. */
export function selectEvents(record: LogRecord, keep: (v: EventMeta) => boolean, below = Infinity): { total: number; events: StoredEvent[] } {
  const verdicts = decodeMeta(record.meta);
  const wanted: number[] = [];
  for (let i = 0; i < verdicts.length && i < below; i++) if (keep(verdicts[i]!)) wanted.push(i);
  if (wanted.length === 0) return { total: verdicts.length, events: [] };
  const body = JSON.parse(record.body.toString('utf8')) as unknown;
  const isBatch = record.kind === 'batch';
  const items: unknown[] = isBatch && isObject(body) && Array.isArray(body.batch) ? body.batch : [body];
  const shared = isBatch && isObject(body) ? body : {};
  return { total: verdicts.length, events: wanted.map((i) => toEvent(record, i, verdicts[i]!, items[i], shared)) };
}

/** One event as a backfill reads it: no copies, no dates rebuilt, the item as it was sent. */
export type ScannedEvent = { id: string; type: string; event: string | null; timestamp: number; payload: Json };

/**
 * The events of a record whose verdict tuple passes `keep` (status, type, event name), read
 * straight from the tuples and the parsed body: for scans over the whole log.
 */
export function scanRecord(record: LogRecord, keep: (status: string, type: string, event: string | undefined) => boolean): ScannedEvent[] {
  const tuples = JSON.parse(record.meta) as MetaTuple[];
  const out: ScannedEvent[] = [];
  let items: unknown[] | undefined;
  for (let i = 0; i < tuples.length; i++) {
    const t = tuples[i]!;
    if (!keep(STATUS_OF[t[2]] ?? 'quarantined', t[1], t[7] || undefined)) continue;
    if (!items) {
      const body = JSON.parse(record.body.toString('utf8')) as unknown;
      items = record.kind === 'batch' && isObject(body) && Array.isArray(body.batch) ? body.batch : [body];
    }
    const item = items[i];
    out.push({ id: eventId(record.id, i), type: t[1], event: t[7] || null, timestamp: t[3], payload: isObject(item) ? item : {} });
  }
  return out;
}

export const expandRecord = (record: LogRecord, keep: (v: EventMeta) => boolean = () => true): StoredEvent[] => selectEvents(record, keep).events;

function toEvent(record: LogRecord, index: number, v: EventMeta, item: unknown, shared: Json): StoredEvent {
  const receivedAt = new Date(record.receivedAt).toISOString();
  const timestamp = new Date(v.timestamp).toISOString();
  return {
    id: eventId(record.id, index),
    messageId: v.messageId,
    type: v.type,
    event: v.event ?? null,
    userId: v.userId ?? null,
    anonymousId: v.anonymousId ?? null,
    status: v.status,
    reasons: v.reasons,
    sourceId: record.sourceId,
    receivedAt,
    timestamp,
    payload: isObject(item) ? payloadOf(item, v, shared, receivedAt, timestamp) : { raw: item ?? null },
  };
}

/** The item with batch-level context and integrations merged in and server-owned fields set. */
function payloadOf(item: Json, v: EventMeta, shared: Json, receivedAt: string, timestamp: string): Json {
  const payload: Json = { ...item };
  for (const field of SERVER_OWNED) delete payload[field];
  for (const field of ['context', 'integrations'] as const) {
    if (isObject(shared[field]) || isObject(item[field])) payload[field] = { ...(isObject(shared[field]) ? shared[field] : {}), ...(isObject(item[field]) ? item[field] : {}) };
  }
  if (payload.sentAt === undefined && shared.sentAt !== undefined) payload.sentAt = shared.sentAt;
  if (item.timestamp !== undefined && item.timestamp !== timestamp && payload.originalTimestamp === undefined) payload.originalTimestamp = item.timestamp;
  payload.type = v.type;
  payload.messageId = v.messageId;
  payload.timestamp = timestamp;
  payload.receivedAt = receivedAt;
  return payload;
}

/** One event by its id (`recordId.index`), read from the log; undefined when it is not there. */
export function findEvent(log: Pick<EventLog, 'get'>, workspaceId: string, eventId: string): StoredEvent | undefined {
  const [recordId, index] = eventId.split('.').map(Number) as [number, number];
  const record = log.get(workspaceId, recordId);
  return record && selectEvents(record, () => true, index + 1).events.find((e) => e.id === eventId);
}

/**
 * Visits the verdicts of the newest records (admin records skipped) received at or after
 * `since`, newest first, reading at most `maxRecords` records. Returns how many it read and
 * whether it reached `since` or the start of the log (`complete`) rather than the limit.
 */
export function forRecentVerdicts(log: Pick<EventLog, 'readBackward'>, workspaceId: string, since: number, maxRecords: number, visit: (record: LogRecord, verdict: EventMeta, index: number) => void): { read: number; complete: boolean } {
  let before = Number.MAX_SAFE_INTEGER;
  let read = 0;
  for (;;) {
    const batch = log.readBackward(workspaceId, before, 64);
    if (batch.length === 0) return { read, complete: true };
    for (const record of batch) {
      before = record.id;
      if (record.receivedAt < since) return { read, complete: true };
      if (read === maxRecords) return { read, complete: false };
      read++;
      if (record.kind !== 'admin') decodeMeta(record.meta).forEach((v, index) => visit(record, v, index));
    }
  }
}
