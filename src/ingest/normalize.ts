import { TandemError, type ErrorCode } from '../errors.ts';
import { isBlockedIdentifier } from '../identity/blocked-values.ts';
import { isObject, type Json } from '../json.ts';

export const EVENT_TYPES = ['identify', 'track', 'page', 'screen', 'group', 'alias'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export type IngestKind = EventType | 'batch';
export type EventStatus = 'accepted' | 'flagged' | 'quarantined';

export const LIMITS = {
  eventBytes: 32 * 1024,
  batchBytes: 500 * 1024,
  batchEvents: 2500,
  messageIdChars: 100,
  identifierChars: 1024,
} as const;

/** Present (not undefined or null) and not an object: what properties, traits, context and integrations must not be. */
const notAnObject = (value: unknown): boolean => value !== undefined && value !== null && !isObject(value);

/**
 * Whether trim() would leave nothing, without making a string when the first character settles
 * it (printable ASCII other than a space: the usual case).
 */
export function isBlank(s: string): boolean {
  const c = s.charCodeAt(0);
  return !(c > 0x20 && c < 0x7f) && s.trim() === '';
}

export type TimePolicy = { futureToleranceMs: number; minTimestampMs: number };

/** What ingest decided about one event: everything later stages need besides the raw JSON. */
export type Verdict = {
  type: string;
  messageId: string;
  generatedId: boolean;
  status: EventStatus;
  reasons: string[];
  timestamp: number;
  userId: string | undefined;
  anonymousId: string | undefined;
  event: string | undefined;
};



/**
 * Checks one event and decides its messageId, status, reasons and corrected timestamp.
 * Returns an error code for an event that must not be processed (the caller answers 400 for a
 * single call and quarantines it inside a batch); reasons on an accepted event only flag it.
 */
export function judgeEvent(item: unknown, pathType: EventType | undefined, batchSentAt: unknown, receivedAt: number, policy: TimePolicy, bytes: number): Verdict {
  const reasons: string[] = [];
  const v: Verdict = { type: pathType ?? 'unknown', messageId: '', generatedId: false, status: 'accepted', reasons, timestamp: receivedAt, userId: undefined, anonymousId: undefined, event: undefined };
  const fail = (code: ErrorCode): Verdict => {
    v.status = 'quarantined';
    reasons.unshift(code);
    return v;
  };
  if (!isObject(item)) return withId(fail('invalid_event'));
  const type = pathType ?? item.type;
  if (typeof type !== 'string' || !(EVENT_TYPES as readonly string[]).includes(type)) {
    withId(v, item.messageId);
    return fail('invalid_type');
  }
  v.type = type;
  const mid = item.messageId;
  if (mid !== undefined && mid !== null && !((typeof mid === 'string' && mid.length <= LIMITS.messageIdChars) || (typeof mid === 'number' && Number.isFinite(mid)))) {
    withId(v);
    return fail('invalid_message_id');
  }
  withId(v, mid);
  if (bytes > LIMITS.eventBytes) return fail('event_too_large');

  const userId = identifier(item.userId);
  const anonymousId = identifier(item.anonymousId);
  if (userId === null || anonymousId === null) return fail('invalid_identifier');
  v.userId = userId;
  v.anonymousId = anonymousId;
  if (userId === undefined && anonymousId === undefined) return fail('missing_identity');
  if ((userId === undefined || isBlockedIdentifier(userId)) && (anonymousId === undefined || isBlockedIdentifier(anonymousId))) reasons.push('blocked_identifier');

  // Named reads: a read keyed by a variable name over these four went megamorphic in the ingest threads.
  if (notAnObject(item.properties) || notAnObject(item.traits) || notAnObject(item.context) || notAnObject(item.integrations)) return fail('invalid_field');
  if (type === 'track') {
    if (typeof item.event !== 'string' || isBlank(item.event)) return fail('missing_event_name');
    v.event = item.event;
  } else if (type === 'page' || type === 'screen') {
    if (typeof item.name === 'string') v.event = item.name;
  } else if (type === 'group') {
    const groupId = identifier(item.groupId);
    if (groupId === undefined || groupId === null) return fail('missing_group_id');
  } else if (type === 'alias') {
    const previousId = identifier(item.previousId);
    if (previousId === undefined || previousId === null || userId === undefined) return fail('missing_previous_id');
  }

  correctTimestamp(v, item, batchSentAt, receivedAt, policy);
  if (reasons.length > 0) v.status = 'flagged';
  return v;
}

/** A single call: an event ingest will not process is a 400 here, not a quarantine entry. */
export function judgeSingle(item: unknown, pathType: EventType, receivedAt: number, policy: TimePolicy, bytes: number): Verdict {
  const v = judgeEvent(item, pathType, undefined, receivedAt, policy, bytes);
  if (v.status === 'quarantined') throw new TandemError(v.reasons[0] as ErrorCode);
  return v;
}

/** undefined: absent or empty; null: present but not usable as an identifier. */
function identifier(value: unknown): string | undefined | null {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  if (typeof value !== 'string') return null;
  if (value.length > LIMITS.identifierChars) return null;
  return isBlank(value) ? undefined : value;
}

function withId(v: Verdict, mid?: unknown): Verdict {
  if (typeof mid === 'string' && !isBlank(mid)) v.messageId = mid;
  else if (typeof mid === 'number') v.messageId = String(mid);
  else {
    v.messageId = `tandem-${crypto.randomUUID()}`;
    v.generatedId = true;
  }
  return v;
}

/** Epoch numbers below 1e11 are seconds, above are milliseconds; strings must parse as dates. */
export function parseTime(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? (Math.abs(value) < 1e11 ? value * 1000 : value) : undefined;
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const ms = parseIsoUtc(value) ?? Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Digits from..to as an integer, or -1 when any is not a digit. */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * The shape nearly every SDK sends, `YYYY-MM-DDTHH:MM:SS(.sss)Z`, without Date.parse's general
 * parser; anything else returns undefined and goes to Date.parse.
 */
function parseIsoUtc(s: string): number | undefined {
  const len = s.length;
  if ((len !== 20 && len !== 24) || s.charCodeAt(len - 1) !== 90 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  if (len === 24 && s.charCodeAt(19) !== 46) return undefined;
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 7);
  const day = digits(s, 8, 10);
  const hour = digits(s, 11, 13);
  const minute = digits(s, 14, 16);
  const second = digits(s, 17, 19);
  const ms = len === 24 ? digits(s, 20, 23) : 0;
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]! || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || ms < 0) return undefined;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return undefined;
  return daysFromCivil(year, month, day) * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + ms;
}

/** Days since 1970-01-01 of a proleptic Gregorian date, in integer arithmetic (cheaper than Date.UTC). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** timestamp = receivedAt − (sentAt − originalTimestamp) when the client gave no timestamp. */
function correctTimestamp(v: Verdict, item: Json, batchSentAt: unknown, receivedAt: number, policy: TimePolicy): void {
  const given = item.timestamp ?? item.originalTimestamp;
  if (given === undefined || given === null) return;
  const clientTime = parseTime(given);
  if (clientTime === undefined) {
    v.reasons.push('invalid_timestamp');
    return;
  }
  let ts = clientTime;
  if (item.timestamp === undefined || item.timestamp === null) {
    const sentAt = parseTime(item.sentAt ?? batchSentAt);
    if (sentAt !== undefined) ts = receivedAt - (sentAt - clientTime);
  }
  if (ts > receivedAt + policy.futureToleranceMs) v.reasons.push('timestamp_in_future');
  else if (ts < policy.minTimestampMs) v.reasons.push('timestamp_too_old');
  else v.timestamp = ts;
}
