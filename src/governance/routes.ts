import type { FastifyInstance } from 'fastify';
import { enforce } from '../ingest/judge.ts';
import type { SourcePlan } from '../access/credentials.ts';
import { TandemError } from '../errors.ts';
import { findEvent, forRecentVerdicts, selectEvents, type StoredEvent } from '../ingest/event-view.ts';
import { readEvents } from '../ingest/events-api.ts';
import { judgeEvent, type TimePolicy } from '../ingest/normalize.ts';
import { encodeMeta } from '../store/event-meta.ts';
import { keyList, type AccessStore, type EventLog, type StageHandle, type Token } from '../store/ports.ts';
import { before } from './audit.ts';
import type { Masker } from './pii.ts';
import { compilePlan, ENFORCEMENTS, PLAN_SCHEMA, PlanError, type PlanDefinition } from './tracking-plan.ts';

export type GovernanceDeps = {
  access: AccessStore;
  log: EventLog;
  stage: StageHandle | undefined;
  policy: TimePolicy;
  sourcePlan: (sourceId: string) => SourcePlan | undefined;
  /** Call after changing plans in this process: ingest picks the change up at once. */
  invalidate: () => void;
  authorize: (header: string | undefined, permission: 'plans:read' | 'plans:manage' | 'quarantine:replay') => Token;
  maskerFor: (token: Token) => Masker;
};

const KEY = { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' } as const;
/** Log records a violations summary reads at most (newest first). */
const SUMMARY_RECORDS = 20_000;

/**
 * Tracking plans (versioned), the plan and enforcement of each source, the violations summary,
 * and replay of quarantined events once the plan is fixed.
 */
export async function governanceRoutes(app: FastifyInstance, deps: GovernanceDeps): Promise<void> {
  const { access } = deps;
  const describe = (p: { key: string; name: string; version: number; definition: string; createdAt: number }) => ({ key: p.key, name: p.name, version: p.version, created_at: new Date(p.createdAt).toISOString(), definition: JSON.parse(p.definition) as PlanDefinition });

  app.get('/api/v1/tracking-plans', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'plans:read');
    return { data: access.plans(workspaceId).map((p) => ({ ...describe(p), versions: p.versions })) };
  });

  app.get<{ Params: { key: string }; Querystring: { version?: string } }>('/api/v1/tracking-plans/:key', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'plans:read');
    const version = req.query.version === undefined ? undefined : Number(req.query.version);
    if (version !== undefined && !Number.isInteger(version)) throw new TandemError('invalid_request', 'version must be a whole number.');
    const plan = access.plan(workspaceId, req.params.key, version);
    if (!plan) throw new TandemError('not_found');
    return describe(plan);
  });

  app.put<{ Params: { key: string }; Body: { name?: string; definition: PlanDefinition } }>(
    '/api/v1/tracking-plans/:key',
    { schema: { params: { type: 'object', properties: { key: KEY } }, body: { type: 'object', additionalProperties: false, required: ['definition'], properties: { name: { type: 'string', maxLength: 200 }, definition: PLAN_SCHEMA } } } },
    async (req, reply) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'plans:manage');
      try {
        compilePlan(req.body.definition);
      } catch (err) {
        if (err instanceof PlanError) throw new TandemError('invalid_plan', err.message);
        throw err;
      }
      const previous = access.plan(workspaceId, req.params.key);
      if (previous) before(req, { version: previous.version, definition: JSON.parse(previous.definition) as unknown });
      const saved = access.savePlan(workspaceId, req.params.key, req.body.name ?? req.params.key, JSON.stringify(req.body.definition));
      deps.invalidate();
      return reply.code(saved.version === 1 ? 201 : 200).send(describe(saved));
    },
  );

  app.get('/api/v1/sources', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'plans:read');
    return { data: access.sources(workspaceId) };
  });

  app.put<{ Params: { id: string }; Body: { plan: string | null; enforcement?: string } }>(
    '/api/v1/sources/:id/plan',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['plan'], properties: { plan: { anyOf: [KEY, { type: 'null' }] }, enforcement: { enum: ENFORCEMENTS } } } } },
    async (req) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'plans:manage');
      if (req.body.plan !== null && !access.plan(workspaceId, req.body.plan)) throw new TandemError('invalid_request', `There is no tracking plan ${JSON.stringify(req.body.plan)}.`);
      const attached = req.body.plan === null ? null : { key: req.body.plan, enforcement: req.body.enforcement ?? 'flag' };
      before(req, access.sources(workspaceId).find((s) => s.id === req.params.id)?.plan ?? null);
      if (!access.attachPlan(workspaceId, req.params.id, attached)) throw new TandemError('not_found');
      deps.invalidate();
      return access.sources(workspaceId).find((s) => s.id === req.params.id);
    },
  );

  /**
   * Violations per source, event and field over the newest part of the log: counts per hour,
   * first and last seen, and one sample payload each.
   */
  app.get<{ Querystring: { source?: string; event?: string; hours?: string } }>('/api/v1/violations', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'plans:read');
    const { workspaceId } = token;
    const masker = deps.maskerFor(token);
    const hours = req.query.hours === undefined ? 168 : Number(req.query.hours);
    if (!(hours > 0 && hours <= 24 * 366)) throw new TandemError('invalid_request', 'hours must be a number from 1 to 8784.');
    const since = Date.now() - hours * 3_600_000;
    type Group = { source_id: string; event: string; field: string; rule: string; count: number; first_seen: number; last_seen: number; by_hour: Map<number, number>; sample?: { recordId: number; index: number } };
    const groups = new Map<string, Group>();
    const { read, complete } = forRecentVerdicts(deps.log, workspaceId, since, SUMMARY_RECORDS, (record, v, index) => {
      if (req.query.source && record.sourceId !== req.query.source) return;
      const event = v.event ?? v.type;
      if (req.query.event && event !== req.query.event) return;
      for (const reason of v.reasons) {
        if (!reason.startsWith('plan:')) continue;
        const cut = reason.lastIndexOf(':');
        const [field, rule] = cut > 5 ? [reason.slice(5, cut), reason.slice(cut + 1)] : ['', reason.slice(5)];
        const key = `${record.sourceId}\u0000${event}\u0000${field}\u0000${rule}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { source_id: record.sourceId, event, field, rule, count: 0, first_seen: record.receivedAt, last_seen: record.receivedAt, by_hour: new Map(), sample: { recordId: record.id, index } }));
        g.count++;
        g.first_seen = Math.min(g.first_seen, record.receivedAt);
        const hour = Math.floor(record.receivedAt / 3_600_000) * 3_600_000;
        g.by_hour.set(hour, (g.by_hour.get(hour) ?? 0) + 1);
      }
    });
    const sample = (s: { recordId: number; index: number }) => {
      const record = deps.log.get(workspaceId, s.recordId);
      const payload = record && selectEvents(record, () => true).events[s.index]?.payload;
      return payload && masker.event(payload);
    };
    const data = [...groups.values()]
      .sort((a, b) => b.count - a.count)
      .map(({ by_hour, sample: s, ...g }) => ({
        ...g,
        first_seen: new Date(g.first_seen).toISOString(),
        last_seen: new Date(g.last_seen).toISOString(),
        by_hour: [...by_hour].sort((a, b) => a[0] - b[0]).map(([at, count]) => ({ at: new Date(at).toISOString(), count })),
        sample: s ? sample(s) : undefined,
      }));
    return { data, complete, records_read: read };
  });

  /**
   * Quarantined events judged again with their source's current plan; those that pass are
   * appended to the log (same payload, messageId, source and received time) and processed, once:
   * a replay is recorded per event, and the log's dedupe refuses a second copy of the same replay.
   */
  app.post<{ Body: { eventIds?: string[]; source?: string; limit?: number } }>(
    '/api/v1/quarantine/replay',
    { schema: { body: { type: 'object', additionalProperties: false, properties: { eventIds: { type: 'array', maxItems: 1000, items: { type: 'string', pattern: '^\\d{1,15}\\.\\d{1,5}$' } }, source: { type: 'string', maxLength: 100 }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } } },
    async (req) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'quarantine:replay');
      const body = req.body ?? {};
      const candidates: StoredEvent[] = body.eventIds
        ? body.eventIds.map((id) => findEvent(deps.log, workspaceId, id)).filter((e): e is StoredEvent => e !== undefined && e.status === 'quarantined')
        : readEvents(deps.log, workspaceId, { status: 'quarantined' }, body.limit ?? 100).data;
      const results = [];
      for (const e of candidates) {
        if (body.source && e.sourceId !== body.source) continue;
        const already = access.replayOf(e.id);
        if (already) {
          results.push({ event_id: e.id, message_id: e.messageId, status: 'replayed', replay_event_id: already });
          continue;
        }
        const receivedAt = Date.parse(e.receivedAt);
        const verdict = judgeEvent(e.payload, undefined, undefined, receivedAt, deps.policy, Buffer.byteLength(JSON.stringify(e.payload)));
        const plan = deps.sourcePlan(e.sourceId);
        if (plan) enforce(plan, verdict, e.payload);
        if (verdict.status === 'quarantined') {
          results.push({ event_id: e.id, message_id: e.messageId, status: 'quarantined', reasons: verdict.reasons });
          continue;
        }
        const appended = await deps.log.append({ workspaceId, sourceId: e.sourceId, receivedAt, kind: 'batch', body: Buffer.from(JSON.stringify({ batch: [e.payload] })), meta: encodeMeta([verdict]), dedupeKeys: keyList([`replay:${e.id}`]) });
        const replayId = `${appended.id}.0`;
        access.recordReplay(workspaceId, e.id, replayId);
        results.push({ event_id: e.id, message_id: e.messageId, status: appended.duplicates.length > 0 ? 'replayed' : verdict.status, replay_event_id: replayId, reasons: verdict.reasons });
      }
      deps.stage?.notify();
      await deps.stage?.caughtUp();
      return { data: results, replayed: results.filter((r) => r.status === 'accepted' || r.status === 'flagged').length, still_quarantined: results.filter((r) => r.status === 'quarantined').length };
    },
  );
}
