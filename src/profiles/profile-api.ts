import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TandemError } from '../errors.ts';
import type { Masker } from '../governance/pii.ts';
import type { Identifier } from '../identity/identifiers.ts';
import { findEvent } from '../ingest/event-view.ts';
import type { EventLog, Token } from '../store/ports.ts';
import type { ProfileReader } from './ports.ts';
import { parseProfileId, profileByRef } from './profile-ref.ts';

export type ProfileApiDeps = {
  profiles: ProfileReader;
  log: Pick<EventLog, 'get'>;
  /** The caller of a request (HTTP Basic access token), checked for `profiles:read`, or throws. */
  authenticate: (request: FastifyRequest) => Token;
  /** What the caller may see of personal data. */
  maskerFor: (token: Token) => Masker;
};

type Params = { spaceId: string; id: string };
type Query = { include?: string; limit?: string; next?: string; class?: string };

const BASE = '/v1/spaces/:spaceId/collections';
const cursorOf = (url: string, next: string | null) => ({ url, has_more: next !== null, next });

function limitOf(query: Query, fallback: number, max: number): number {
  if (query.limit === undefined) return fallback;
  const n = Number(query.limit);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new TandemError('invalid_request', `limit must be an integer from 1 to ${max}.`);
  return n;
}

/** Segment's Profile API shape, read from Tandem's profiles. */
export async function profileApi(app: FastifyInstance, deps: ProfileApiDeps): Promise<void> {
  const { profiles } = deps;

  /** The caller's workspace (which must be the space in the path) and the identifier asked for. */
  function scope(params: Params, request: FastifyRequest): { workspaceId: string; id: Identifier; masker: Masker } {
    const token = deps.authenticate(request);
    if (params.spaceId !== token.workspaceId) throw new TandemError('not_found');
    return { workspaceId: token.workspaceId, id: parseProfileId(params.id), masker: deps.maskerFor(token) };
  }

  function profileIn(workspaceId: string, id: Identifier): string {
    const profileId = profileByRef(profiles, workspaceId, id);
    if (!profileId) throw new TandemError('not_found', 'No profile has this identifier.');
    return profileId;
  }

  function profile(params: Params, request: FastifyRequest): { workspaceId: string; profileId: string; masker: Masker } {
    const { workspaceId, id, masker } = scope(params, request);
    return { workspaceId, profileId: profileIn(workspaceId, id), masker };
  }

  /** All trait values by identifier, in one read when no class is asked for (the hot path). */
  function traitsFor(params: Params, request: FastifyRequest, cls: string | undefined): { values: Record<string, unknown>; masker: Masker } {
    const { workspaceId, id, masker } = scope(params, request);
    if (cls === undefined && id.type !== 'profile_id') {
      const found = profiles.traitValuesOf(workspaceId, id);
      if (!found) throw new TandemError('not_found', 'No profile has this identifier.');
      return { values: found.values, masker };
    }
    const profileId = profileIn(workspaceId, id);
    if (cls === 'audience') return { values: Object.fromEntries(profiles.memberships(profileId).map((key) => [key, true])), masker };
    return { values: cls === 'computed_trait' ? profiles.computedValues(profileId) : profiles.traitValues(profileId), masker };
  }

  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/users/profiles/:id/traits`, async (req) => {
    const limit = limitOf(req.query, 10, 200);
    if (req.query.class !== undefined && !['computed_trait', 'audience'].includes(req.query.class)) throw new TandemError('invalid_request', 'class must be computed_trait or audience.');
    const { values: all, masker } = traitsFor(req.params, req, req.query.class);
    const include = req.query.include?.split(',').map((s) => s.trim()).filter(Boolean);
    const keys = Object.keys(all).filter((k) => (!include || include.includes(k)) && (req.query.next === undefined || k > req.query.next)).sort();
    const page = keys.slice(0, limit);
    const next = keys.length > limit ? page[page.length - 1]! : null;
    const url = req.url.split('?')[0]!;
    return { traits: masker.traits(Object.fromEntries(page.map((k) => [k, all[k]]))), cursor: cursorOf(next ? `${url}?limit=${limit}&next=${encodeURIComponent(next)}` : url, next) };
  });

  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/users/profiles/:id/events`, async (req) => {
    const { workspaceId, profileId, masker } = profile(req.params, req);
    const limit = limitOf(req.query, 10, 100);
    let before: { timestamp: number; eventId: string } | undefined;
    if (req.query.next !== undefined) {
      const m = /^(\d{1,15})\.(\d{1,15}\.\d{1,5})$/.exec(Buffer.from(req.query.next, 'base64url').toString('latin1'));
      if (!m) throw new TandemError('invalid_cursor');
      before = { timestamp: Number(m[1]), eventId: m[2]! };
    }
    const refs = profiles.events(profileId, limit + 1, before);
    const data = refs.slice(0, limit).map(({ eventId }) => {
      const e = findEvent(deps.log, workspaceId, eventId);
      if (!e) return { message_id: null, event_id: eventId };
      const p = masker.event(e.payload);
      return { type: e.type, event: e.event, message_id: e.messageId, source_id: e.sourceId, timestamp: e.timestamp, received_at: e.receivedAt, properties: p.properties ?? {}, traits: p.traits ?? undefined, context: p.context ?? {} };
    });
    const last = refs.length > limit ? refs[limit - 1]! : null;
    const next = last ? Buffer.from(`${last.timestamp}.${last.eventId}`).toString('base64url') : null;
    const url = req.url.split('?')[0]!;
    return { data, cursor: cursorOf(next ? `${url}?limit=${limit}&next=${next}` : url, next) };
  });

  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/users/profiles/:id/external_ids`, async (req) => {
    const { profileId, masker } = profile(req.params, req);
    const limit = limitOf(req.query, 25, 200);
    const offset = req.query.next === undefined ? 0 : Number(req.query.next);
    if (!Number.isInteger(offset) || offset < 0) throw new TandemError('invalid_cursor');
    const all = profiles.identifiers(profileId);
    const page = all.slice(offset, offset + limit);
    const next = offset + limit < all.length ? String(offset + limit) : null;
    const url = req.url.split('?')[0]!;
    return {
      data: page.map((i) => ({ id: masker.identifier(i.type, i.value), type: i.type, collection: 'users', encoding: 'none', created_at: new Date(i.createdAt).toISOString(), first_message_id: i.messageId, rule: i.rule })),
      cursor: cursorOf(next ? `${url}?limit=${limit}&next=${next}` : url, next),
    };
  });

  app.get<{ Params: Params }>(`${BASE}/users/profiles/:id/metadata`, async (req) => {
    const { profileId } = profile(req.params, req);
    const meta = profiles.metadata(profileId)!;
    return { metadata: { profile_id: profileId, created_at: new Date(meta.createdAt).toISOString(), updated_at: new Date(meta.updatedAt).toISOString(), expires_at: null } };
  });

  const account = (params: Params, request: FastifyRequest) => {
    const { workspaceId, id, masker } = scope(params, request);
    if (id.type !== 'group_id') throw new TandemError('invalid_request', 'Accounts are looked up by group_id.');
    const found = profiles.account(workspaceId, id.value);
    if (!found) throw new TandemError('not_found', 'No account has this group_id.');
    return { workspaceId, groupId: id.value, found, masker };
  };

  app.get<{ Params: Params; Querystring: Query }>(`${BASE}/accounts/profiles/:id/traits`, async (req) => {
    const { found, masker } = account(req.params, req);
    const include = req.query.include?.split(',').map((s) => s.trim()).filter(Boolean);
    const traits = masker.properties(Object.fromEntries(Object.entries(found.traits).filter(([k]) => !include || include.includes(k)).map(([k, v]) => [k, v.value])));
    return { traits, cursor: cursorOf(req.url.split('?')[0]!, null) };
  });

  app.get<{ Params: Params }>(`${BASE}/accounts/profiles/:id/links`, async (req) => {
    const { workspaceId, groupId, masker } = account(req.params, req);
    const data = profiles.accountLinks(workspaceId, groupId).map((profileId) => ({
      to_collection: 'users',
      external_ids: profiles.identifiers(profileId).map((i) => ({ id: masker.identifier(i.type, i.value), type: i.type, collection: 'users', encoding: 'none', created_at: new Date(i.createdAt).toISOString() })),
    }));
    return { data, cursor: cursorOf(req.url.split('?')[0]!, null) };
  });
}
