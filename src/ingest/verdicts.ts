import type { EventStatus, Verdict } from './normalize.ts';

/** A verdict as stored in the log's meta column: small, and readable without the body. */
export type StoredVerdict = {
  messageId: string;
  type: string;
  status: EventStatus | 'duplicate';
  timestamp: number;
  reasons: string[];
  userId: string | undefined;
  anonymousId: string | undefined;
  event: string | undefined;
};

const STATUS_CODE = { accepted: 'a', flagged: 'f', quarantined: 'q', duplicate: 'd' } as const;
const CODE_STATUS: Record<string, StoredVerdict['status']> = { a: 'accepted', f: 'flagged', q: 'quarantined', d: 'duplicate' };

type Tuple = [string, string, string, number, string[] | 0, string | 0, string | 0, string | 0];

export function encodeVerdicts(verdicts: readonly Verdict[], duplicates: ReadonlySet<number>): string {
  const rows: Tuple[] = new Array(verdicts.length);
  for (let i = 0; i < verdicts.length; i++) {
    const v = verdicts[i]!;
    rows[i] = [v.messageId, v.type, duplicates.has(i) ? 'd' : STATUS_CODE[v.status], v.timestamp, v.reasons.length ? v.reasons : 0, v.userId ?? 0, v.anonymousId ?? 0, v.event ?? 0];
  }
  return JSON.stringify(rows);
}

export function decodeVerdicts(meta: string): StoredVerdict[] {
  return (JSON.parse(meta) as Tuple[]).map((t) => ({
    messageId: t[0],
    type: t[1],
    status: CODE_STATUS[t[2]] ?? 'quarantined',
    timestamp: t[3],
    reasons: t[4] || [],
    userId: t[5] || undefined,
    anonymousId: t[6] || undefined,
    event: t[7] || undefined,
  }));
}
