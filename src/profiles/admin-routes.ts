import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import { before } from '../governance/audit.ts';
import type { Masker } from '../governance/pii.ts';
import { DEFAULT_RULES, type IdentityRules } from '../identity/merge-policy.ts';
import { COMPUTED_TRAIT_SCHEMA, type ComputedTrait } from './computed-traits.ts';
import { encodeMeta } from '../store/event-meta.ts';
import type { EventLog, StageHandle, Token } from '../store/ports.ts';
import type { ProfileReader, ProfileWriter } from './ports.ts';
import { parseProfileId, profileByRef } from './profile-ref.ts';

type Permission = 'identity:read' | 'identity:manage' | 'traits:manage' | 'traits:read';
export type ProfileAdminDeps = {
  profiles: ProfileReader & Pick<ProfileWriter, 'setRules'>;
  log: Pick<EventLog, 'append'>;
  stage: StageHandle | undefined;
  authorize: (header: string | undefined, permission: Permission) => Token;
  maskerFor: (token: Token) => Masker;
  now: () => number;
};

const TYPE = { type: 'string', pattern: '^[a-z][a-z0-9_]{0,63}$' } as const;
const RULES_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limits: { type: 'object', propertyNames: TYPE, additionalProperties: { type: 'integer', minimum: 1, maximum: 1000 } },
    defaultLimit: { type: 'integer', minimum: 1, maximum: 1000 },
    priority: { type: 'array', items: TYPE, uniqueItems: true, maxItems: 64 },
    blocked: { type: 'array', maxItems: 100, items: { type: 'object', additionalProperties: false, required: ['type', 'pattern'], properties: { type: { anyOf: [TYPE, { const: '*' }] }, pattern: { type: 'string', minLength: 1, maxLength: 200 } } } },
    mergeCap: { type: 'integer', minimum: 1, maximum: 100000 },
  },
} as const;

/** Identity rules, the explanation of a profile's identifiers, and hand merges and splits. */
export async function profileAdminRoutes(app: FastifyInstance, deps: ProfileAdminDeps): Promise<void> {
  const { profiles } = deps;

  /** Admin reads and changes see every event acknowledged before them. */
  const settled = async () => {
    await deps.stage?.caughtUp();
  };

  const find = (workspaceId: string, ref: string): string => {
    const profileId = profileByRef(profiles, workspaceId, parseProfileId(ref));
    if (!profileId) throw new TandemError('not_found', 'No profile has this identifier.');
    return profileId;
  };

  const adminEvent = createAdminEvents(deps);

  app.get('/api/v1/computed-traits', async (req) => ({ data: profiles.computedTraits(deps.authorize(req.headers.authorization, 'traits:read').workspaceId) }));

  app.post<{ Body: ComputedTrait }>('/api/v1/computed-traits', { schema: { body: COMPUTED_TRAIT_SCHEMA } }, async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'traits:manage');
    const existing = profiles.computedTraits(token.workspaceId).find((t) => t.key === req.body.key);
    const existed = existing !== undefined;
    if (existing) before(req, existing);
    await adminEvent(token.workspaceId, token, { op: 'computed_trait', trait: req.body });
    return reply.code(existed ? 200 : 201).send(req.body);
  });

  app.delete<{ Params: { key: string } }>('/api/v1/computed-traits/:key', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'traits:manage');
    if (!profiles.computedTraits(token.workspaceId).some((t) => t.key === req.params.key)) throw new TandemError('not_found');
    await adminEvent(token.workspaceId, token, { op: 'computed_trait_delete', key: req.params.key });
    return reply.code(204).send();
  });

  app.get('/api/v1/identity/rules', async (req) => profiles.rules(deps.authorize(req.headers.authorization, 'identity:read').workspaceId));

  app.put<{ Body: Partial<IdentityRules> }>('/api/v1/identity/rules', { schema: { body: RULES_SCHEMA } }, async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'identity:manage');
    before(req, profiles.rules(workspaceId));
    for (const b of req.body.blocked ?? []) {
      try {
        new RegExp(b.pattern, 'iu');
      } catch {
        throw new TandemError('invalid_request', `blocked pattern ${JSON.stringify(b.pattern)} is not a valid regular expression.`);
      }
    }
    const rules: IdentityRules = { ...DEFAULT_RULES, ...profiles.rules(workspaceId), ...req.body };
    profiles.setRules(workspaceId, rules);
    return rules;
  });

  app.get<{ Params: { ref: string } }>('/api/v1/profiles/:ref/identities', async (req) => {
    const token = deps.authorize(req.headers.authorization, 'identity:read');
    const { workspaceId } = token;
    const masker = deps.maskerFor(token);
    await settled();
    const profileId = find(workspaceId, req.params.ref);
    const iso = (t: number) => new Date(t).toISOString();
    const shown = (id: { type: string; value: string }) => ({ type: id.type, value: masker.identifier(id.type, id.value) });
    return {
      profile_id: profileId,
      identifiers: profiles.identifiers(profileId).map((i) => ({ type: i.type, value: masker.identifier(i.type, i.value), rule: i.rule, event_id: i.eventId, message_id: i.messageId, linked_at: iso(i.createdAt) })),
      merges: profiles.merges(profileId).map((m) => ({ from: m.from, into: m.into, via: shown(m.via), rule: m.rule, event_id: m.eventId, at: iso(m.at) })),
      splits: profiles.splits(profileId).map((s) => ({ from: s.from, to: s.to, identifier: shown(s.id), moved_events: s.movedEvents, event_id: s.eventId, at: iso(s.at) })),
      warnings: profiles.warnings(profileId).map((w) => ({ event_id: w.eventId, ...w.warning })),
      audiences: profiles.memberships(profileId),
      audience_history: profiles.profileAudienceHistory(profileId, 100).map((h) => ({ audience: h.key, change: h.change, at: iso(h.at), event_id: h.eventId })),
    };
  });

  const refBody = (required: string[]) => ({ type: 'object', additionalProperties: false, required, properties: Object.fromEntries(required.map((k) => [k, { type: 'string', minLength: 3, maxLength: 1100 }])) });

  app.post<{ Body: { from: string; into: string } }>('/api/v1/profiles/merge', { schema: { body: refBody(['from', 'into']) } }, async (req) => {
    const token = deps.authorize(req.headers.authorization, 'identity:manage');
    await settled();
    const from = find(token.workspaceId, req.body.from);
    const into = find(token.workspaceId, req.body.into);
    if (from === into) throw new TandemError('invalid_request', 'Both identifiers already belong to one profile.');
    await adminEvent(token.workspaceId, token, { op: 'merge', from: `profile_id:${from}`, into: `profile_id:${into}` });
    return { profile_id: into, merged: from };
  });

  app.post<{ Params: { ref: string }; Body: { identifier: string } }>('/api/v1/profiles/:ref/split', { schema: { body: refBody(['identifier']) } }, async (req) => {
    const token = deps.authorize(req.headers.authorization, 'identity:manage');
    await settled();
    const from = find(token.workspaceId, req.params.ref);
    const id = parseProfileId(req.body.identifier);
    if (profiles.profileOf(token.workspaceId, id) !== from) throw new TandemError('invalid_request', 'The identifier does not belong to this profile.');
    if (profiles.identifiers(from).length < 2) throw new TandemError('invalid_request', 'A profile with one identifier cannot be split.');
    await adminEvent(token.workspaceId, token, { op: 'split', profile: `profile_id:${from}`, identifier: `${id.type}:${id.value}` });
    return { from, to: profiles.profileOf(token.workspaceId, id), identifier: id };
  });
}

/**
 * Admin changes to profiles (merges, splits, computed traits, audiences) are events in the log,
 * so the profile stage applies them in order with everything else; the call returns once it has.
 */
export function createAdminEvents(deps: Pick<ProfileAdminDeps, 'log' | 'stage' | 'now'>) {
  return async function adminEvent(workspaceId: string, token: Token, body: Record<string, unknown>): Promise<void> {
    if (!deps.stage) throw new TandemError('unavailable');
    const at = deps.now();
    const messageId = `admin-${crypto.randomUUID()}`;
    const payload = { ...body, actor: token.id };
    const meta = encodeMeta([{ messageId, type: String(body.op), status: 'accepted', timestamp: at, reasons: [], userId: undefined, anonymousId: undefined, event: undefined }]);
    try {
      await deps.log.append({ workspaceId, sourceId: 'admin', receivedAt: at, kind: 'admin', body: Buffer.from(JSON.stringify({ ...payload, type: body.op })), meta });
    } catch (cause) {
      throw new TandemError('unavailable', undefined, { cause });
    }
    await deps.stage.caughtUp();
  };
}
