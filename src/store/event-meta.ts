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

/**
 * Calls `visit` with each event's messageId as the body of its JSON string literal (`text` from
 * `from` to `to`: JSON.stringify(id) without its quotes, which stands for the id one to one) and
 * whether the event is marked duplicate. The dedupe window reads it at every start for each
 * record in the window (millions), so it walks the string JSON.stringify wrote, with no string
 * made per id; anything it does not expect goes to JSON.parse.
 */
export function eachMessageId(meta: string, visit: (text: string, from: number, to: number, duplicate: boolean) => void): void {
  let spans: number[];
  try {
    spans = idSpans(meta);
  } catch {
    for (const t of JSON.parse(meta) as MetaTuple[]) {
      const literal = JSON.stringify(String(t[0]));
      visit(literal, 1, literal.length - 1, t[2] === DUPLICATE);
    }
    return;
  }
  for (let i = 0; i < spans.length; i += 3) visit(meta, spans[i]! + 1, spans[i + 1]!, spans[i + 2] === DUPLICATE_CODE);
}

const DUPLICATE_CODE = DUPLICATE.charCodeAt(0);

/** Index of the quote closing the JSON string that opens at `open`. */
function endOfString(s: string, open: number): number {
  for (let q = open; ; ) {
    q = s.indexOf('"', q + 1);
    if (q < 0) throw new SyntaxError('unterminated string');
    let backslashes = 0;
    while (s.charCodeAt(q - 1 - backslashes) === 92) backslashes++;
    if ((backslashes & 1) === 0) return q;
  }
}

/**
 * Where each tuple's id is, as JSON.stringify of MetaTuples wrote them (`["id","type","s",…]`):
 * flat triples of the indexes of the quotes that open and close the id's string literal and the
 * char code of the status. Throws on anything JSON.stringify of MetaTuples would not have written.
 */
function idSpans(meta: string): number[] {
  const spans: number[] = [];
  const n = meta.length;
  if (meta.charCodeAt(0) !== 91 || meta.charCodeAt(n - 1) !== 93) throw new SyntaxError('not an array');
  let i = 1;
  while (i < n - 1) {
    if (meta.charCodeAt(i) !== 91 || meta.charCodeAt(i + 1) !== 34) throw new SyntaxError('not a tuple');
    const idEnd = endOfString(meta, i + 1);
    if (meta.charCodeAt(idEnd + 1) !== 44 || meta.charCodeAt(idEnd + 2) !== 34) throw new SyntaxError('no type');
    const typeEnd = endOfString(meta, idEnd + 2);
    if (meta.charCodeAt(typeEnd + 1) !== 44 || meta.charCodeAt(typeEnd + 2) !== 34 || meta.charCodeAt(typeEnd + 4) !== 34) throw new SyntaxError('no status');
    spans.push(i + 1, idEnd, meta.charCodeAt(typeEnd + 3));
    let p = typeEnd + 5;
    for (let depth = 0; ; p++) {
      const c = meta.charCodeAt(p);
      if (c === 34) p = endOfString(meta, p);
      else if (c === 91) depth++;
      else if (c === 93 && depth-- === 0) break;
      else if (p >= n) throw new SyntaxError('unterminated tuple');
    }
    const next = meta.charCodeAt(p + 1);
    if (next !== 44 && p + 1 !== n - 1) throw new SyntaxError('no separator');
    i = p + 2;
  }
  return spans;
}

/** Marks the events at `indexes` as duplicates; returns the new meta string. */
export function markDuplicates(meta: string, indexes: readonly number[]): string {
  const tuples = JSON.parse(meta) as MetaTuple[];
  for (const i of indexes) tuples[i]![2] = DUPLICATE;
  return JSON.stringify(tuples);
}
