/**
 * The per-event index data stored beside each log record's raw bytes: what ingest decided for
 * each event, readable without parsing the body. Every adapter stores this string as it is.
 */
export type EventStatus = 'accepted' | 'flagged' | 'quarantined' | 'duplicate';

export type EventMeta = {
  messageId: string;
  type: string;
  status: EventStatus;
  timestamp: number;
  reasons: string[];
  userId: string | undefined;
  anonymousId: string | undefined;
  event: string | undefined;
};

export const STATUS_CODE = { accepted: 'a', flagged: 'f', quarantined: 'q', duplicate: 'd' } as const;
export const STATUS_OF: Record<string, EventStatus> = { a: 'accepted', f: 'flagged', q: 'quarantined', d: 'duplicate' };
export const DUPLICATE = 'd';

export type MetaTuple = [string, string, string, number, string[] | 0, string | 0, string | 0, string | 0];

export function encodeMeta(events: readonly EventMeta[]): string {
  const rows: MetaTuple[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const v = events[i]!;
    rows[i] = [v.messageId, v.type, STATUS_CODE[v.status], v.timestamp, v.reasons.length ? v.reasons : 0, v.userId ?? 0, v.anonymousId ?? 0, v.event ?? 0];
  }
  return JSON.stringify(rows);
}

export function decodeMeta(meta: string): EventMeta[] {
  return (JSON.parse(meta) as MetaTuple[]).map((t) => ({
    messageId: t[0],
    type: t[1],
    status: STATUS_OF[t[2]] ?? 'quarantined',
    timestamp: t[3],
    reasons: t[4] || [],
    userId: t[5] || undefined,
    anonymousId: t[6] || undefined,
    event: t[7] || undefined,
  }));
}

/** The messageIds of the events that are not marked duplicate. */
export function messageIdsOf(meta: string): string[] {
  return (JSON.parse(meta) as MetaTuple[]).filter((t) => t[2] !== DUPLICATE).map((t) => t[0]);
}

/** Marks the events at `indexes` as duplicates; returns the new meta string. */
export function markDuplicates(meta: string, indexes: readonly number[]): string {
  const tuples = JSON.parse(meta) as MetaTuple[];
  for (const i of indexes) tuples[i]![2] = DUPLICATE;
  return JSON.stringify(tuples);
}
