import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import { before } from '../governance/audit.ts';
import type { Masker } from '../governance/pii.ts';
import { isObject, type Json } from '../json.ts';
import type { AccessStore, Activation, ActivationStore, Delivery, DeliveryStatus, Destination, EventLog, EventStream, Token } from '../store/ports.ts';
import { ACTIVATION_FIELDS_SCHEMA, ACTIVATION_SCHEMA, DESTINATION_SCHEMA, NO_FIELDS, type ActivationAdmin, type ActivationFields, type ActivationInput, type DestinationInput } from './admin.ts';
import { newSecret } from './webhook.ts';

export type ActivationRouteDeps = {
  store: ActivationStore;
  access: AccessStore;
  admin: ActivationAdmin;
  authorize: (header: string | undefined, permission: 'destinations:read' | 'destinations:manage' | 'activations:manage' | 'changes:approve') => Token;
  /** Whether a token holds a permission, without refusing (and auditing) when it does not. */
  can: (token: Token, permission: 'changes:approve' | 'destinations:manage') => boolean;
  maskerFor: (token: Token) => Masker;
  /** Where a new event stream starts: the newest record of the log. */
  log: Pick<EventLog, 'lastId'>;
  now: () => number;
};

const STATUSES: DeliveryStatus[] = ['pending', 'delivered', 'dead', 'suppressed', 'skipped', 'cancelled'];
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** A webhook URL's path and query often carry a token of the receiver's: only those who manage destinations see them. */
const shownUrl = (url: string, full: boolean) => (full ? url : `${new URL(url).origin}/…`);

export function describeDestination(d: Destination, counts: Partial<Record<DeliveryStatus, number>>, full = true) {
  return {
    id: d.id, name: d.name, url: shownUrl(d.url, full), purposes: d.purposes, consent_mode: d.consentMode, enabled: d.enabled, created_at: iso(d.createdAt), created_by: d.createdBy,
    deliveries: Object.fromEntries(STATUSES.map((s) => [s, counts[s] ?? 0])),
  };
}

export const describeStream = (e: EventStream) => ({
  id: e.id, destination: e.destinationId, source: e.sourceId, types: e.types, events: e.events, created_at: iso(e.createdAt), created_by: e.createdBy,
});

const STREAM_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['destination'],
  properties: {
    destination: { type: 'string', minLength: 1, maxLength: 200 },
    source: { type: 'string', minLength: 1, maxLength: 200 },
    types: { type: 'array', uniqueItems: true, items: { enum: ['identify', 'track', 'page', 'screen', 'group', 'alias'] } },
    events: { type: 'array', maxItems: 500, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 200 } },
  },
} as const;

export const describeActivation = (a: Activation) => ({
  id: a.id, destination: a.destinationId, audience: a.audienceKey, traits: a.traits, identifiers: a.identifiers, created_at: iso(a.createdAt), created_by: a.createdBy,
});

/** A delivery as the API shows it: its body with personal data masked for callers without `pii`. */
function describeDelivery(d: Delivery, masker: Masker) {
  let body: Json | null = d.body === null ? null : (JSON.parse(d.body) as Json);
  if (body && masker.masks && isObject(body.event)) body = { ...body, event: masker.event(body.event) };
  if (body && masker.masks && isObject(body.profile)) {
    const profile = body.profile;
    const identifiers = isObject(profile.identifiers) ? Object.fromEntries(Object.entries(profile.identifiers).map(([type, values]) => [type, (values as string[]).map((v) => masker.identifier(type, v))])) : {};
    body = { ...body, profile: { ...profile, identifiers, traits: isObject(profile.traits) ? masker.traits(profile.traits) : {} } };
  }
  return {
    id: d.id, type: d.kind, audience: d.audienceKey || null, profile_id: d.profileId, activation: d.activationId, status: d.status, attempts: d.attempts, next_attempt_at: d.status === 'pending' ? iso(d.nextAt) : null,
    last_status: d.lastStatus, last_error: d.lastError, at: iso(d.at), cause: d.cause, created_at: iso(d.createdAt), finished_at: iso(d.finishedAt), body,
  };
}

/**
 * Destinations (engineers: where data may go, with the consent it needs) and activations
 * (marketers: which audience goes where, with which traits and identifiers), their deliveries and
 * dead letters. A marketer's activation that would send personal data needs an approved change
 * request when the workspace asks for one (`approvalRequired.pii_to_destination`).
 */
export async function activationRoutes(app: FastifyInstance, deps: ActivationRouteDeps): Promise<void> {
  const { store, admin } = deps;
  /** The workspace's object, or a 404 (another workspace's is not found either). */
  const found = <T>(x: T | undefined): T => {
    if (x === undefined) throw new TandemError('not_found');
    return x;
  };
  const find = (workspaceId: string, id: string) => found(store.destination(workspaceId, id));
  /** Personal data the workspace wants reviewed goes through a change request, unless an approver makes the change. */
  const unlessReviewed = (token: Token, pii: string[], kind: 'activation' | 'activation_fields') => {
    if (pii.length > 0 && !deps.can(token, 'changes:approve')) {
      throw new TandemError('approval_required', `Sending ${pii.join(', ')} to a destination needs an engineer's approval: propose it with POST /api/v1/change-requests (kind "${kind}").`);
    }
  };

  app.get('/api/v1/destinations', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:read');
    const full = deps.can(token, 'destinations:manage');
    return { data: store.destinations(token.workspaceId).map((d) => describeDestination(d, store.deliveryCounts(d.id), full)) };
  });

  app.post<{ Body: DestinationInput }>('/api/v1/destinations', { schema: { body: DESTINATION_SCHEMA } }, async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const d = admin.createDestination(token.workspaceId, req.body, token.id);
    // The signing secret is shown here and when rotated, never in listings.
    return reply.code(201).send({ ...describeDestination(d, {}), secret: d.secret });
  });

  app.get<{ Params: { id: string } }>('/api/v1/destinations/:id', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:read');
    const { workspaceId } = token;
    const d = find(workspaceId, req.params.id);
    return {
      ...describeDestination(d, store.deliveryCounts(d.id), deps.can(token, 'destinations:manage')),
      activations: store.activations(workspaceId).filter((a) => a.destinationId === d.id).map(describeActivation),
      event_streams: store.streams(workspaceId).filter((e) => e.destinationId === d.id).map(describeStream),
    };
  });

  const PATCH = { ...DESTINATION_SCHEMA, required: [] };
  app.patch<{ Params: { id: string }; Body: Partial<DestinationInput> }>('/api/v1/destinations/:id', { schema: { body: PATCH } }, async (req) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const d = find(token.workspaceId, req.params.id);
    before(req, describeDestination(d, {}));
    const b = req.body;
    if (b.name !== undefined && b.name !== d.name && admin.destinationNamed(token.workspaceId, b.name)) throw new TandemError('already_exists', `A destination named ${JSON.stringify(b.name)} exists already.`);
    const next: Destination = {
      ...d, ...(b.name !== undefined ? { name: b.name } : {}), ...(b.url !== undefined ? { url: admin.checkedUrl(b.url) } : {}), ...(b.purposes !== undefined ? { purposes: b.purposes } : {}),
      ...(b.consentMode !== undefined ? { consentMode: b.consentMode } : {}), ...(b.enabled !== undefined ? { enabled: b.enabled } : {}),
    };
    store.saveDestination(next);
    return describeDestination(next, store.deliveryCounts(d.id));
  });

  app.delete<{ Params: { id: string } }>('/api/v1/destinations/:id', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const d = find(token.workspaceId, req.params.id);
    before(req, describeDestination(d, {}));
    store.deleteDestination(token.workspaceId, d.id);
    return reply.code(204).send();
  });

  app.post<{ Params: { id: string } }>('/api/v1/destinations/:id/secret', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const d = { ...find(token.workspaceId, req.params.id), secret: newSecret() };
    store.saveDestination(d);
    return { id: d.id, secret: d.secret };
  });

  app.get<{ Params: { id: string }; Querystring: { status?: string; before?: string; limit?: string } }>('/api/v1/destinations/:id/deliveries', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:read');
    const d = find(token.workspaceId, req.params.id);
    const q = req.query;
    if (q.status !== undefined && !STATUSES.includes(q.status as DeliveryStatus)) throw new TandemError('invalid_request', `status is one of ${STATUSES.join(', ')}.`);
    const beforeId = q.before === undefined ? Number.MAX_SAFE_INTEGER : Number(q.before);
    const limit = q.limit === undefined ? 100 : Number(q.limit);
    if (!Number.isSafeInteger(beforeId) || beforeId < 1) throw new TandemError('invalid_cursor');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TandemError('invalid_request', 'limit must be a whole number from 1 to 1000.');
    const rows = store.deliveries(token.workspaceId, d.id, { ...(q.status ? { status: q.status as DeliveryStatus } : {}), before: beforeId, limit });
    const masker = deps.maskerFor(token);
    return { data: rows.map((r) => describeDelivery(r, masker)), next: rows.length === limit ? String(rows.at(-1)!.id) : null };
  });

  app.post<{ Params: { id: string }; Body: { ids?: number[] } | undefined }>(
    '/api/v1/destinations/:id/deliveries/retry',
    { schema: { body: { type: 'object', additionalProperties: false, properties: { ids: { type: 'array', minItems: 1, maxItems: 10000, items: { type: 'integer', minimum: 1 } } } } } },
    async (req) => {
      const token = deps.authorize(req.headers.authorization, 'activations:manage');
      const d = find(token.workspaceId, req.params.id);
      return { retried: store.retryDead(token.workspaceId, d.id, req.body?.ids, deps.now()) };
    },
  );

  app.get('/api/v1/event-streams', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'destinations:read');
    return { data: store.streams(workspaceId).map(describeStream) };
  });

  // Whole events, personal data included, go out: engineers and owners set these up.
  app.post<{ Body: { destination: string; source?: string; types?: string[]; events?: string[] } }>('/api/v1/event-streams', { schema: { body: STREAM_SCHEMA } }, async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const destination = admin.destinationOf(token.workspaceId, req.body.destination);
    const source = req.body.source === undefined ? null : deps.access.sources(token.workspaceId).find((s) => s.id === req.body.source || s.name === req.body.source);
    if (source === undefined) throw new TandemError('not_found', `No source ${JSON.stringify(req.body.source)}.`);
    const stream: EventStream = {
      id: `evs_${crypto.randomUUID()}`, workspaceId: token.workspaceId, destinationId: destination.id, sourceId: source?.id ?? null, types: req.body.types ?? [], events: req.body.events ?? [],
      after: deps.log.lastId(), createdAt: deps.now(), createdBy: token.id,
    };
    store.createStream(stream);
    return reply.code(201).send(describeStream(stream));
  });

  app.get<{ Params: { id: string } }>('/api/v1/event-streams/:id', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'destinations:read');
    return describeStream(found(store.stream(workspaceId, req.params.id)));
  });

  app.delete<{ Params: { id: string } }>('/api/v1/event-streams/:id', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'destinations:manage');
    const e = found(store.stream(token.workspaceId, req.params.id));
    before(req, describeStream(e));
    store.deleteStream(token.workspaceId, e.id);
    return reply.code(204).send();
  });

  app.get('/api/v1/activations', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'destinations:read');
    return { data: store.activations(workspaceId).map(describeActivation) };
  });

  app.post<{ Body: ActivationInput }>('/api/v1/activations', { schema: { body: ACTIVATION_SCHEMA } }, async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'activations:manage');
    unlessReviewed(token, admin.reviewedPii(token.workspaceId, NO_FIELDS, req.body), 'activation');
    return reply.code(201).send(describeActivation(admin.createActivation(token.workspaceId, req.body, token.id)));
  });

  app.get<{ Params: { id: string } }>('/api/v1/activations/:id', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'destinations:read');
    return describeActivation(found(store.activation(workspaceId, req.params.id)));
  });

  app.patch<{ Params: { id: string }; Body: ActivationFields }>('/api/v1/activations/:id', { schema: { body: ACTIVATION_FIELDS_SCHEMA } }, async (req) => {
    const token = deps.authorize(req.headers.authorization, 'activations:manage');
    const a = found(store.activation(token.workspaceId, req.params.id));
    unlessReviewed(token, admin.reviewedPii(token.workspaceId, a, { traits: req.body.traits ?? a.traits, identifiers: req.body.identifiers ?? a.identifiers }), 'activation_fields');
    before(req, describeActivation(a));
    return describeActivation(admin.setFields(token.workspaceId, a, req.body));
  });

  app.delete<{ Params: { id: string } }>('/api/v1/activations/:id', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'activations:manage');
    const a = found(store.activation(token.workspaceId, req.params.id));
    before(req, describeActivation(a));
    store.deleteActivation(token.workspaceId, a.id);
    return reply.code(204).send();
  });
}
