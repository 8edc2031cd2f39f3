import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import { before } from '../governance/audit.ts';
import type { Backfill, ProfileReader } from '../profiles/ports.ts';
import type { Masker } from '../governance/pii.ts';
import type { Token } from '../store/ports.ts';
import { DefinitionError, dependencyOrder, references, validateDefinition, type Audience } from './definition.ts';
import { parseAudience, printAudience } from './text.ts';

export type AudienceRouteDeps = {
  profiles: ProfileReader;
  authorize: (header: string | undefined, permission: 'audiences:read' | 'audiences:manage') => Token;
  /** Appends an admin event to the log and waits until the profile stage applied it. */
  adminEvent: (workspaceId: string, token: Token, body: Record<string, unknown>) => Promise<void>;
  maskerFor: (token: Token) => Masker;
};

const BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: { key: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' }, name: { type: 'string', maxLength: 200 }, definition: { type: 'object' }, text: { type: 'string', maxLength: 10000 } },
} as const;

/**
 * How far building an audience has come: the log scan for its event conditions (when it has new
 * ones) counts for the first half, evaluating every profile for the rest.
 */
function progressOf(b: Backfill | undefined) {
  if (!b) return null;
  const profiles = b.profilesTotal > 0 ? Math.min(1, b.profilesDone / b.profilesTotal) : 1;
  const events = b.upTo > 1 ? Math.min(1, b.logAfter / (b.upTo - 1)) : 1;
  const progress = b.phase === 'done' ? 1 : b.traits.length === 0 ? profiles : b.phase === 'events' ? events / 2 : 0.5 + profiles / 2;
  return {
    status: b.phase === 'done' ? 'done' : 'running',
    phase: b.phase,
    progress: Math.round(progress * 1000) / 1000,
    log: { scanned_to: b.logAfter, up_to: b.upTo },
    profiles: { evaluated: b.profilesDone, total: b.profilesTotal },
    entered: b.entered,
    exited: b.exited,
    started_at: new Date(b.startedAt).toISOString(),
    finished_at: b.finishedAt === null ? null : new Date(b.finishedAt).toISOString(),
  };
}

/** Audience definitions: create or change (built in the background, progress in `backfill`), preview, list, read, delete. */
export async function audienceRoutes(app: FastifyInstance, deps: AudienceRouteDeps): Promise<void> {
  const { profiles } = deps;
  const describe = (workspaceId: string, a: Audience) => {
    // Progress first: a size read after it includes at least what that progress says is done.
    const backfill = progressOf(profiles.backfill(workspaceId, a.key));
    return { key: a.key, name: a.name, definition: a.definition, text: printAudience(a.definition), size: profiles.audienceSize(workspaceId, a.key), backfill };
  };

  app.get('/api/v1/audiences', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'audiences:read');
    return { data: profiles.audiences(workspaceId).map((a) => describe(workspaceId, a)) };
  });

  app.get<{ Params: { key: string } }>('/api/v1/audiences/:key', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'audiences:read');
    const audience = profiles.audiences(workspaceId).find((a) => a.key === req.params.key);
    if (!audience) throw new TandemError('not_found');
    const history = profiles.audienceHistory(workspaceId, audience.key, 100).map((h) => ({ profile_id: h.profileId, change: h.change, at: new Date(h.at).toISOString(), event_id: h.eventId }));
    return { ...describe(workspaceId, audience), history };
  });

  type Body = { key: string; name?: string; definition?: unknown; text?: string };
  /** The audience a request describes, checked: either form, valid, and no cycle with the others. */
  function audienceOf(workspaceId: string, body: Body): Audience {
    if ((body.definition === undefined) === (body.text === undefined)) throw new TandemError('invalid_request', 'Give either definition (the JSON tree) or text (the short form).');
    try {
      const definition = body.text !== undefined ? parseAudience(body.text) : validateDefinition(body.definition);
      const audience = { key: body.key, name: body.name ?? body.key, definition };
      dependencyOrder([...profiles.audiences(workspaceId).filter((a) => a.key !== audience.key), audience]);
      return audience;
    } catch (err) {
      if (err instanceof DefinitionError) throw new TandemError('invalid_definition', err.message);
      throw err;
    }
  }

  /**
   * Every entry and exit as a Segment track event ("Audience Entered" / "Audience Exited"), in
   * the order they happened, for activation: a destination reads on from its last cursor. The
   * profile's identifiers are those it has now (following merges).
   */
  app.get<{ Querystring: { after?: string; limit?: string; audience?: string } }>('/api/v1/audience-events', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'audiences:read');
    const { workspaceId } = token;
    const masker = deps.maskerFor(token);
    const after = req.query.after === undefined ? 0 : Number(req.query.after);
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (!Number.isSafeInteger(after) || after < 0) throw new TandemError('invalid_cursor');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TandemError('invalid_request', 'limit must be a whole number from 1 to 1000.');
    const names = new Map(profiles.audiences(workspaceId).map((a) => [a.key, a.name]));
    const changes = profiles.audienceChanges(workspaceId, after, limit, req.query.audience);
    const data = changes.map((c) => {
      const live = profiles.liveProfileOf(c.profileId) ?? c.profileId;
      const ids = profiles.identifiers(live);
      const first = (type: string) => {
        const id = ids.find((i) => i.type === type);
        return id && masker.identifier(id.type, id.value);
      };
      const email = first('email');
      return {
        type: 'track',
        event: c.change === 'enter' ? 'Audience Entered' : 'Audience Exited',
        messageId: `audience-${workspaceId}-${c.id}`,
        timestamp: new Date(c.at).toISOString(),
        ...(first('user_id') !== undefined ? { userId: first('user_id') } : {}),
        ...(first('anonymous_id') !== undefined ? { anonymousId: first('anonymous_id') } : {}),
        properties: { audience_key: c.key, audience_name: names.get(c.key) ?? c.key, profile_id: live, cause_event_id: c.eventId },
        ...(email !== undefined ? { context: { traits: { email } } } : {}),
      };
    });
    return { data, next: changes.length > 0 ? String(changes[changes.length - 1]!.id) : String(after) };
  });

  app.get<{ Params: { key: string }; Querystring: { bucket?: string } }>('/api/v1/audiences/:key/sizes', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'audiences:read');
    if (!profiles.audiences(workspaceId).some((a) => a.key === req.params.key)) throw new TandemError('not_found');
    const bucket = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }[req.query.bucket ?? 'hour'];
    if (!bucket) throw new TandemError('invalid_request', 'bucket must be minute, hour or day.');
    return { data: profiles.audienceSizes(workspaceId, req.params.key, bucket).map((s) => ({ at: new Date(s.at).toISOString(), size: s.size })) };
  });

  app.post<{ Body: Body }>('/api/v1/audiences/preview', { schema: { body: BODY } }, async (req) => {
    const token = deps.authorize(req.headers.authorization, 'audiences:manage');
    const audience = audienceOf(token.workspaceId, req.body);
    const previewId = crypto.randomUUID();
    await deps.adminEvent(token.workspaceId, token, { op: 'audience_preview', audience, previewId, sample: 10 });
    const result = profiles.preview(token.workspaceId, previewId) as { size: number; sample: Array<{ profile_id: string; identifiers: Array<{ type: string; value: string }> }> } | undefined;
    if (!result) throw new TandemError('unavailable');
    const masker = deps.maskerFor(token);
    if (result.sample) result.sample = result.sample.map((s) => ({ ...s, identifiers: s.identifiers.map((i) => ({ type: i.type, value: masker.identifier(i.type, i.value) })) }));
    return { key: audience.key, definition: audience.definition, text: printAudience(audience.definition), ...result };
  });

  app.post<{ Body: Body }>('/api/v1/audiences', { schema: { body: BODY } }, async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'audiences:manage');
    const audience = audienceOf(token.workspaceId, req.body);
    const existing = profiles.audiences(token.workspaceId).find((a) => a.key === audience.key);
    const existed = existing !== undefined;
    if (existing) before(req, existing);
    await deps.adminEvent(token.workspaceId, token, { op: 'audience', audience });
    return reply.code(existed ? 200 : 201).send(describe(token.workspaceId, audience));
  });

  app.delete<{ Params: { key: string } }>('/api/v1/audiences/:key', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'audiences:manage');
    const list = profiles.audiences(token.workspaceId);
    if (!list.some((a) => a.key === req.params.key)) throw new TandemError('not_found');
    const dependent = list.find((a) => references(a.definition).audiences.has(req.params.key));
    if (dependent) throw new TandemError('invalid_request', `Audience ${JSON.stringify(dependent.key)} uses it.`);
    before(req, list.find((a) => a.key === req.params.key));
    await deps.adminEvent(token.workspaceId, token, { op: 'audience_delete', key: req.params.key });
    return reply.code(204).send();
  });
}
