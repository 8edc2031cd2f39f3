import { TandemError } from '../errors.ts';
import type { Appended, EventLog, LogRecord, WriteKey } from '../store/ports.ts';
import { encodeMeta, markDuplicates } from '../store/event-meta.ts';
import { decodeBody, parseJsonBody, type ParsedBody } from './body.ts';
import { judgeEvent, judgeSingle, LIMITS, type EventType, type IngestKind, type TimePolicy, type Verdict } from './normalize.ts';
import { isObject } from '../json.ts';
import type { SourcePlan } from '../access/credentials.ts';

/**
 * The source's tracking plan on one event that passed the basic checks: violations become
 * reasons `plan:<field>:<keyword>`; `allow` keeps the event accepted, `flag` flags it, `block`
 * quarantines it (kept in the log with its reasons, replayable once the plan is fixed).
 */
export function enforce(plan: SourcePlan, verdict: Verdict, item: unknown): void {
  if (verdict.status === 'quarantined' || !isObject(item)) return;
  const violations = plan.check(verdict.type, item);
  if (violations.length === 0) return;
  for (const v of violations) verdict.reasons.push(`plan:${v}`);
  if (plan.enforcement === 'flag') verdict.status = 'flagged';
  else if (plan.enforcement === 'block') verdict.status = 'quarantined';
}

export type IngestRequest = {
  kind: IngestKind;
  raw: Buffer;
  contentEncoding: string | undefined;
  /** The write key from HTTP Basic, if any; otherwise the body's `writeKey` is used. */
  basicKey: string | undefined;
};

export type IngestOutcome = { record: LogRecord; accepted: number; flagged: number; quarantined: number; duplicates: number };

export type IngestDeps = {
  log: EventLog;
  resolveWriteKey: (key: string) => WriteKey | undefined;
  /** The tracking plan a source enforces, if any. */
  sourcePlan?: (sourceId: string) => SourcePlan | undefined;
  policy: TimePolicy;
  maxBodyBytes: number;
  maxPendingBytes: number;
  now?: () => number;
};


/**
 * The ingest path: decode, authenticate, judge each event, append to the log (which marks
 * repeated messageIds as duplicates), and resolve only once the log has committed. Rejections throw a TandemError with a code.
 */
export function createIngest(deps: IngestDeps) {
  const now = deps.now ?? Date.now;

  function authenticate(basicKey: string | undefined, body: unknown): WriteKey {
    const key = basicKey ?? (isObject(body) && typeof body.writeKey === 'string' ? body.writeKey : undefined);
    if (!key) throw new TandemError('missing_write_key');
    const found = deps.resolveWriteKey(key);
    if (!found) throw new TandemError('invalid_write_key');
    return found;
  }

  function judgeAll(kind: IngestKind, parsed: ParsedBody, receivedAt: number, plan: SourcePlan | undefined): Verdict[] {
    if (kind !== 'batch') {
      const verdict = judgeSingle(parsed.value, kind as EventType, receivedAt, deps.policy, parsed.bytes.length);
      if (plan) enforce(plan, verdict, parsed.value);
      return [verdict];
    }
    const body = parsed.value;
    if (!isObject(body) || !Array.isArray(body.batch)) throw new TandemError('invalid_batch');
    if (parsed.bytes.length > LIMITS.batchBytes) throw new TandemError('batch_too_large');
    const items = body.batch;
    if (items.length > LIMITS.batchEvents) throw new TandemError('batch_too_many_events');
    const spans = parsed.shape.itemSpans.length === items.length ? parsed.shape.itemSpans : undefined;
    const small = parsed.bytes.length <= LIMITS.eventBytes;
    const verdicts: Verdict[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const bytes = small ? 0 : (spans?.[i] ?? Buffer.byteLength(JSON.stringify(items[i]) ?? ''));
      verdicts[i] = judgeEvent(items[i], undefined, body.sentAt, receivedAt, deps.policy, bytes);
      if (plan) enforce(plan, verdicts[i]!, items[i]);
    }
    return verdicts;
  }

  return async function accept(req: IngestRequest): Promise<IngestOutcome> {
    const receivedAt = now();
    const decoded = decodeBody(req.raw, req.contentEncoding, deps.maxBodyBytes);
    const basic = req.basicKey ? authenticate(req.basicKey, undefined) : undefined;
    const parsed = parseJsonBody(decoded);
    const source = basic ?? authenticate(undefined, parsed.value);
    if (deps.log.pendingBytes() > deps.maxPendingBytes) throw new TandemError('rate_limited');
    const verdicts = judgeAll(req.kind, parsed, receivedAt, deps.sourcePlan?.(source.sourceId));
    const messageIds = verdicts.map((v) => v.messageId);
    const entry = { workspaceId: source.workspaceId, sourceId: source.sourceId, receivedAt, kind: req.kind, body: parsed.bytes, meta: encodeMeta(verdicts) };
    let appended: Appended;
    try {
      appended = await deps.log.append({ ...entry, messageIds });
    } catch (cause) {
      throw new TandemError('unavailable', undefined, { cause });
    }
    const duplicates = new Set(appended.duplicates);
    const meta = appended.duplicates.length > 0 ? markDuplicates(entry.meta, appended.duplicates) : entry.meta;
    const outcome: IngestOutcome = { record: { ...entry, meta, id: appended.id }, accepted: 0, flagged: 0, quarantined: 0, duplicates: duplicates.size };
    for (let i = 0; i < verdicts.length; i++) {
      if (!duplicates.has(i)) outcome[verdicts[i]!.status]++;
    }
    return outcome;
  };
}
