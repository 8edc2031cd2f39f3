import { TandemError } from '../errors.ts';
import { isObject } from '../json.ts';
import type { SourcePlan } from '../access/credentials.ts';
import { keyList, type KeyList, type WriteKey } from '../store/ports.ts';
import { encodeMeta, STATUS_CODE } from '../store/event-meta.ts';
import { ONE_FRAME, storedEntry } from '../store/log-encoding.ts';
import { decodeBody, parseJsonBody, type ParsedBody } from './body.ts';
import { giveValues } from './json-pick.ts';
import { judgeEvent, judgeSingle, LIMITS, type EventType, type IngestKind, type TimePolicy, type Verdict } from './normalize.ts';

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

/** One request as the HTTP thread received it. */
export type JudgeInput = {
  kind: IngestKind;
  raw: Uint8Array;
  contentEncoding: string | undefined;
  /** The write key from HTTP Basic, if any; otherwise the body's `writeKey` is used. */
  basicKey: string | undefined;
  /** When the request arrived, set by the HTTP thread (whatever the client sends). */
  receivedAt: number;
};

/**
 * What ingest decided about a request, ready for the log: the source, and the request's JSON
 * bytes (inflated, without a BOM) with the per-event verdicts as the log stores them
 * (log-encoding.ts's storedEntry, here beside the log writer, whose commits are serial): one
 * compressed frame where that pays, as `bodyEncoding` says (`meta` then holds the verdicts'
 * length), else the JSON and the verdicts' text. `statuses` holds one status code per event
 * (`a`, `f`, `q`), for counting once deduplication is known.
 */
export type Judged = { workspaceId: string; sourceId: string; body: Uint8Array; bodyEncoding?: typeof ONE_FRAME; meta: string; messageIds: KeyList; statuses: string };

export type JudgeDeps = {
  resolveWriteKey: (key: string) => WriteKey | undefined;
  /** The tracking plan a source enforces, if any. */
  sourcePlan?: (sourceId: string) => SourcePlan | undefined;
  policy: TimePolicy;
  maxBodyBytes: number;
};

/**
 * Decode, authenticate, parse and judge each event: everything ingest decides before the log.
 * A pure function of the request and the credentials, so it runs on ingest worker threads (see
 * judge-pool.ts) as well as in-process. Rejections throw a TandemError with a code.
 */
export function createJudge(deps: JudgeDeps): (input: JudgeInput) => Judged {
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
    const small = parsed.bytes.length <= LIMITS.eventBytes;
    const verdicts: Verdict[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      verdicts[i] = judgeEvent(items[i], undefined, body.sentAt, receivedAt, deps.policy, small ? 0 : parsed.itemSpans[i]!);
      if (plan) enforce(plan, verdicts[i]!, items[i]);
    }
    return verdicts;
  }

  return function judge(input: JudgeInput): Judged {
    const raw = Buffer.from(input.raw.buffer, input.raw.byteOffset, input.raw.byteLength);
    const decoded = decodeBody(raw, input.contentEncoding, deps.maxBodyBytes);
    const basic = input.basicKey ? authenticate(input.basicKey, undefined) : undefined;
    const parsed = parseJsonBody(decoded);
    const source = basic ?? authenticate(undefined, parsed.value);
    const plan = deps.sourcePlan?.(source.sourceId);
    // A plan validates events' properties and traits: they get their values.
    if (plan) giveValues(parsed.bytes, parsed.value);
    const verdicts = judgeAll(input.kind, parsed, input.receivedAt, plan);
    let statuses = '';
    const messageIds = new Array<string>(verdicts.length);
    for (let i = 0; i < verdicts.length; i++) {
      statuses += STATUS_CODE[verdicts[i]!.status];
      messageIds[i] = verdicts[i]!.messageId;
    }
    const stored = storedEntry(parsed.bytes, encodeMeta(verdicts));
    const judged: Judged = { workspaceId: source.workspaceId, sourceId: source.sourceId, body: stored.body, meta: stored.meta, messageIds: keyList(messageIds), statuses };
    if (stored.encoding === ONE_FRAME) judged.bodyEncoding = ONE_FRAME;
    return judged;
  };
}
