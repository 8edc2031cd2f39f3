import type { FastifyInstance } from 'fastify';
import type { LiveFeed } from '../bus/live.ts';
import { TandemError } from '../errors.ts';
import type { EventLog, Token } from '../store/ports.ts';
import type { Masker } from '../governance/pii.ts';
import { expandRecord, selectEvents, type StoredEvent } from './event-view.ts';
import type { EventMeta } from '../store/event-meta.ts';

export type EventFilter = { messageId?: string; userId?: string; anonymousId?: string; type?: string; status?: string };
export type EventPage = { data: StoredEvent[]; next: string | null };

const FILTER_KEYS = ['messageId', 'userId', 'anonymousId', 'type', 'status'] as const;
const STATUSES = ['accepted', 'flagged', 'quarantined', 'duplicate'];
/** Events examined per page at most; past that the page ends early with a cursor to go on. */
const SCAN_BUDGET = 50_000;
const RECORDS_PER_READ = 64;

function matches(filter: EventFilter): (v: EventMeta) => boolean {
  return (v) =>
    (filter.status ? v.status === filter.status : v.status !== 'duplicate') &&
    (!filter.messageId || v.messageId === filter.messageId) &&
    (!filter.userId || v.userId === filter.userId) &&
    (!filter.anonymousId || v.anonymousId === filter.anonymousId) &&
    (!filter.type || v.type === filter.type);
}

const encodeCursor = (recordId: number, index: number): string => Buffer.from(`${recordId}.${index}`).toString('base64url');
function decodeCursor(cursor: string): { recordId: number; index: number } {
  const m = /^(\d{1,15})\.(\d{1,5})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  if (!m) throw new TandemError('invalid_cursor');
  return { recordId: Number(m[1]), index: Number(m[2]) };
}

/**
 * Reads the log newest first, one page of events matching the filter. The cursor points just
 * before the last event returned, or where the scan budget ran out.
 */
export function readEvents(log: EventLog, workspaceId: string, filter: EventFilter, limit: number, cursor?: string): EventPage {
  const keep = matches(filter);
  const start = cursor ? decodeCursor(cursor) : undefined;
  const data: StoredEvent[] = [];
  let examined = 0;
  let before = start ? start.recordId + 1 : Number.MAX_SAFE_INTEGER;
  for (;;) {
    const records = log.readBackward(workspaceId, before, RECORDS_PER_READ);
    if (records.length === 0) return { data, next: null };
    for (const record of records) {
      const below = start && start.recordId === record.id ? start.index : Infinity;
      const { total, events } = selectEvents(record, keep, below);
      for (let i = events.length - 1; i >= 0; i--) {
        data.push(events[i]!);
        if (data.length === limit) return { data, next: encodeCursor(record.id, Number(events[i]!.id.split('.')[1])) };
      }
      examined += Math.min(total, below);
      before = record.id;
      if (examined >= SCAN_BUDGET) return { data, next: encodeCursor(record.id, 0) };
    }
  }
}

type Query = Partial<Record<(typeof FILTER_KEYS)[number] | 'limit' | 'cursor', string>>;

function parseQuery(query: Query): { filter: EventFilter; limit: number } {
  const filter: EventFilter = {};
  for (const key of FILTER_KEYS) {
    const value = query[key];
    if (value !== undefined) {
      if (typeof value !== 'string' || value.length > 1024) throw new TandemError('invalid_request', `${key} is not valid.`);
      filter[key] = value;
    }
  }
  if (filter.status && !STATUSES.includes(filter.status)) throw new TandemError('invalid_request', `status must be one of ${STATUSES.join(', ')}.`);
  const limit = query.limit === undefined ? 50 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new TandemError('invalid_request', 'limit must be an integer from 1 to 500.');
  return { filter, limit };
}

export type EventsApiDeps = {
  log: EventLog;
  live: LiveFeed;
  authorize: (header: string | undefined) => Token;
  maskerFor: (token: Token) => Masker;
};

/** An event as this caller may see it: personal data masked without the `pii` permission. */
function shown(masker: Masker, e: StoredEvent): StoredEvent {
  if (!masker.masks) return e;
  const userId = e.userId === null ? null : masker.identifier('user_id', e.userId);
  const anonymousId = e.anonymousId === null ? null : masker.identifier('anonymous_id', e.anonymousId);
  return { ...e, userId, anonymousId, payload: masker.event(e.payload) };
}

/** The live event log (the debugger): a paginated list and a Server-Sent Events stream. */
export async function eventsApi(app: FastifyInstance, deps: EventsApiDeps): Promise<void> {
  app.get<{ Querystring: Query }>('/api/v1/events', async (request) => {
    const token = deps.authorize(request.headers.authorization);
    const { workspaceId } = token;
    const masker = deps.maskerFor(token);
    const { filter, limit } = parseQuery(request.query);
    if (request.query.cursor !== undefined && typeof request.query.cursor !== 'string') throw new TandemError('invalid_cursor');
    const page = readEvents(deps.log, workspaceId, filter, limit, request.query.cursor);
    const params = new URLSearchParams(Object.entries({ ...filter, limit: String(limit) }));
    if (page.next) params.set('cursor', page.next);
    return { data: page.data.map((e) => shown(masker, e)), cursor: { has_more: page.next !== null, next: page.next, url: page.next ? `/api/v1/events?${params}` : null } };
  });

  app.get<{ Querystring: Query }>('/api/v1/events/stream', (request, reply) => {
    const token = deps.authorize(request.headers.authorization);
    const { workspaceId } = token;
    const masker = deps.maskerFor(token);
    const { filter } = parseQuery(request.query);
    const keep = matches(filter);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write(': connected\n\n');
    const unsubscribe = deps.live.subscribe((record) => {
      if (record.workspaceId !== workspaceId) return;
      for (const e of expandRecord(record, keep)) res.write(`id: ${e.id}\nevent: event\ndata: ${JSON.stringify(shown(masker, e))}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  });
}
