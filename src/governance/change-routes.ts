import type { FastifyInstance } from 'fastify';
import { ACTIVATION_FIELDS_SCHEMA, ACTIVATION_SCHEMA, DESTINATION_SCHEMA, fieldsOf, NO_FIELDS, type ActivationAdmin, type ActivationFields, type ActivationInput, type DestinationInput } from '../activate/admin.ts';
import { TandemError } from '../errors.ts';
import { forRecentVerdicts } from '../ingest/event-view.ts';
import type { AccessStore, ActivationStore, ChangeRequest, EventLog, Token } from '../store/ports.ts';
import type { ProfileReader } from '../profiles/ports.ts';
import { DEFAULT_APPROVAL, diffPlans, referencing, settingsOf, touchedEvents, type GovernanceSettings } from './changes.ts';
import { compilePlan, PLAN_SCHEMA, PlanError, type PlanDefinition } from './tracking-plan.ts';

export type ChangeDeps = {
  access: AccessStore;
  log: EventLog;
  profiles: ProfileReader;
  activations: ActivationAdmin;
  activationStore: ActivationStore;
  invalidate: () => void;
  authorize: (header: string | undefined, permission: 'changes:propose' | 'changes:approve' | 'plans:read' | 'tokens:manage') => Token;
  now: () => number;
};

const KINDS = ['tracking_plan', 'destination', 'activation', 'activation_fields'] as const;
type Kind = (typeof KINDS)[number];

const DAY = 86_400_000;
/** Log records read at most to count an event's volume. */
const VOLUME_RECORDS = 20_000;
/** Audience changes read at most to count an activation's deliveries over a week. */
const VOLUME_CHANGES = 100_000;

type Proposal = { target: string; proposal: unknown; baseVersion: number | null };
type Described = { diff: unknown; impact: { audiences: string[]; computedTraits: string[]; destinations: string[]; volume_7d: Record<string, number>; pii: { added: string[]; removed: string[] } } };

/**
 * Change requests: a marketer proposes a change that needs IT's consent (a tracking plan change,
 * such as a new event or property; a new destination; an activation that sends personal data to a
 * destination); an engineer approves or rejects it with a comment; an approved change applies
 * atomically, unless what it was made on moved on meanwhile. Each request shows its diff and its
 * impact: audiences, computed traits and destinations that read what it touches, the volume
 * over the last 7 days, and personal data added or removed.
 */
export async function changeRoutes(app: FastifyInstance, deps: ChangeDeps): Promise<void> {
  const { access } = deps;

  /** Events seen per touched name over the last 7 days, from the newest part of the log. */
  function volume(workspaceId: string, names: string[]): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    forRecentVerdicts(deps.log, workspaceId, deps.now() - 7 * DAY, VOLUME_RECORDS, (_record, v) => {
      const name = v.type === 'page' || v.type === 'screen' ? `${v.type}:${v.event ?? ''}` : v.event;
      if (name !== undefined && name in counts && v.status !== 'duplicate') counts[name]!++;
    });
    return counts;
  }

  const destinationName = (workspaceId: string, id: string) => deps.activationStore.destination(workspaceId, id)?.name ?? id;
  const proposedActivation = (c: ChangeRequest) => (JSON.parse(c.proposal) as { definition: ActivationInput }).definition;
  const proposedFields = (c: ChangeRequest) => JSON.parse(c.proposal) as { definition: Required<ActivationFields>; base: Required<ActivationFields> };

  /**
   * What an activation's fields going from `from` to `to` touch: its audience, the computed traits
   * it starts sending, its destination, what it would have sent over the last week (the audience's
   * entries and exits), and personal data added and removed.
   */
  function activationImpact(workspaceId: string, audience: string | undefined, destinationId: string | undefined, from: Required<ActivationFields>, to: Required<ActivationFields>): Described['impact'] {
    const computed = new Set(deps.profiles.computedTraits(workspaceId).map((t) => t.key));
    const since = deps.now() - 7 * DAY;
    return {
      audiences: audience ? [audience] : [],
      computedTraits: to.traits.filter((t) => !from.traits.includes(t) && computed.has(t)),
      destinations: destinationId ? [destinationName(workspaceId, destinationId)] : [],
      volume_7d: audience ? { [audience]: deps.profiles.audienceHistory(workspaceId, audience, VOLUME_CHANGES).filter((h) => h.at >= since).length } : {},
      pii: { added: deps.activations.piiAdded(workspaceId, from, to), removed: deps.activations.piiAdded(workspaceId, to, from) },
    };
  }

  const KIND: Record<Kind, { propose(token: Token, body: ProposeBody): Proposal; needsReview(c: ChangeRequest): boolean; describe(c: ChangeRequest): Described; apply(c: ChangeRequest): { version?: number; ref?: string } }> = {
    tracking_plan: {
      propose(token, body) {
        if (body.target === undefined) throw new TandemError('invalid_request', 'A tracking plan change names its plan in `target`.');
        const definition = body.definition as PlanDefinition;
        try {
          compilePlan(definition);
        } catch (err) {
          if (err instanceof PlanError) throw new TandemError('invalid_plan', err.message);
          throw err;
        }
        const base = access.plan(token.workspaceId, body.target);
        return { target: body.target, proposal: { name: body.name ?? base?.name ?? body.target, definition }, baseVersion: base?.version ?? null };
      },
      needsReview: (c) => settingsOf(access, c.workspaceId).approvalRequired.tracking_plan,
      describe(c) {
        const proposal = JSON.parse(c.proposal) as { definition: PlanDefinition };
        const base = c.baseVersion === null ? undefined : access.plan(c.workspaceId, c.target, c.baseVersion);
        const diff = diffPlans(base ? (JSON.parse(base.definition) as PlanDefinition) : {}, proposal.definition);
        const read = referencing(diff, deps.profiles.audiences(c.workspaceId), deps.profiles.computedTraits(c.workspaceId));
        // Destinations receive the audiences it touches, or traits when the trait schemas change.
        const traitsChange = diff.traits.identify || diff.traits.group;
        const activations = deps.activationStore.activations(c.workspaceId).filter((a) => read.audiences.includes(a.audienceKey) || (traitsChange && a.traits.length > 0));
        // Event streams that forward the events it touches, or identify/group calls when their schemas change.
        const touched = touchedEvents(diff).map((name) => (name.startsWith('page:') || name.startsWith('screen:') ? { type: name.slice(0, name.indexOf(':')), event: undefined } : { type: 'track', event: name }));
        if (diff.traits.identify) touched.push({ type: 'identify', event: undefined });
        if (diff.traits.group) touched.push({ type: 'group', event: undefined });
        const streams = deps.activationStore.streams(c.workspaceId).filter((e) => touched.some((t) => (e.types.length === 0 || e.types.includes(t.type)) && (t.event === undefined || e.events.length === 0 || e.events.includes(t.event))));
        const destinations = [...new Set([...activations, ...streams].map((x) => destinationName(c.workspaceId, x.destinationId)))].sort();
        return { diff, impact: { ...read, destinations, volume_7d: volume(c.workspaceId, touchedEvents(diff)), pii: diff.pii } };
      },
      apply(c) {
        const proposal = JSON.parse(c.proposal) as { name: string; definition: PlanDefinition };
        const current = access.plan(c.workspaceId, c.target)?.version ?? null;
        if (current !== c.baseVersion) throw new TandemError('stale_change', `The plan is at version ${current} now, the request was made on ${c.baseVersion}; propose it again.`);
        const saved = access.savePlan(c.workspaceId, c.target, proposal.name, JSON.stringify(proposal.definition));
        deps.invalidate();
        return { version: saved.version };
      },
    },
    destination: {
      propose(token, body) {
        const d = body.definition as DestinationInput;
        deps.activations.checkedUrl(d.url);
        if (deps.activations.destinationNamed(token.workspaceId, d.name)) throw new TandemError('already_exists', `A destination named ${JSON.stringify(d.name)} exists already.`);
        return { target: d.name, proposal: { definition: d }, baseVersion: null };
      },
      needsReview: (c) => settingsOf(access, c.workspaceId).approvalRequired.destination,
      describe(c) {
        const d = (JSON.parse(c.proposal) as { definition: DestinationInput }).definition;
        const diff = { destinations: { added: [{ name: d.name, url: d.url, purposes: d.purposes ?? [], consentMode: d.consentMode ?? 'opt_in' }], removed: [] } };
        return { diff, impact: { audiences: [], computedTraits: [], destinations: [d.name], volume_7d: {}, pii: { added: [], removed: [] } } };
      },
      apply: (c) => ({ ref: deps.activations.createDestination(c.workspaceId, (JSON.parse(c.proposal) as { definition: DestinationInput }).definition, c.proposedBy).id }),
    },
    activation: {
      propose(token, body) {
        const a = body.definition as ActivationInput;
        const destination = deps.activations.destinationOf(token.workspaceId, a.destination);
        if (!deps.profiles.audiences(token.workspaceId).some((x) => x.key === a.audience)) throw new TandemError('not_found', `No audience ${JSON.stringify(a.audience)}.`);
        return { target: `${destination.name}/${a.audience}`, proposal: { definition: { ...a, destination: destination.id } }, baseVersion: null };
      },
      needsReview: (c) => deps.activations.reviewedPii(c.workspaceId, NO_FIELDS, proposedActivation(c)).length > 0,
      describe(c) {
        const a = proposedActivation(c);
        const diff = { activations: { added: [{ destination: destinationName(c.workspaceId, a.destination), audience: a.audience, ...fieldsOf(a) }], removed: [] } };
        return { diff, impact: activationImpact(c.workspaceId, a.audience, a.destination, NO_FIELDS, fieldsOf(a)) };
      },
      apply: (c) => ({ ref: deps.activations.createActivation(c.workspaceId, proposedActivation(c), c.proposedBy).id }),
    },
    // Traits or identifier types added to (or taken from) an activation that exists.
    activation_fields: {
      propose(token, body) {
        if (body.target === undefined) throw new TandemError('invalid_request', 'A change of an activation names it in `target`.');
        const a = deps.activationStore.activation(token.workspaceId, body.target);
        if (!a) throw new TandemError('not_found', `No activation ${JSON.stringify(body.target)}.`);
        const fields = body.definition as ActivationFields;
        return { target: a.id, proposal: { definition: { traits: fields.traits ?? a.traits, identifiers: fields.identifiers ?? a.identifiers }, base: { traits: a.traits, identifiers: a.identifiers } }, baseVersion: null };
      },
      needsReview(c) {
        const p = proposedFields(c);
        return deps.activations.reviewedPii(c.workspaceId, p.base, p.definition).length > 0;
      },
      describe(c) {
        const p = proposedFields(c);
        const a = deps.activationStore.activation(c.workspaceId, c.target);
        const change = (from: string[], to: string[]) => ({ added: to.filter((x) => !from.includes(x)), removed: from.filter((x) => !to.includes(x)) });
        const diff = { activation: c.target, traits: change(p.base.traits, p.definition.traits), identifiers: change(p.base.identifiers, p.definition.identifiers) };
        return { diff, impact: activationImpact(c.workspaceId, a?.audienceKey, a?.destinationId, p.base, p.definition) };
      },
      apply(c) {
        const p = proposedFields(c);
        const a = deps.activationStore.activation(c.workspaceId, c.target);
        if (!a) throw new TandemError('not_found', 'The activation was deleted.');
        if (JSON.stringify([a.traits, a.identifiers]) !== JSON.stringify([p.base.traits, p.base.identifiers])) throw new TandemError('stale_change', 'The activation changed since the request was made; propose it again.');
        return { ref: deps.activations.setFields(c.workspaceId, a, p.definition).id };
      },
    },
  };

  function describe(c: ChangeRequest) {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      id: c.id,
      kind: c.kind,
      target: c.target,
      status: c.status,
      base_version: c.baseVersion,
      applied_version: c.appliedVersion,
      applied_id: c.appliedRef,
      proposed_by: c.proposedBy,
      proposed_at: iso(c.proposedAt),
      comment: c.comment,
      decided_by: c.decidedBy,
      decided_at: iso(c.decidedAt),
      decision_comment: c.decisionComment,
      proposal: JSON.parse(c.proposal) as unknown,
      ...KIND[c.kind as Kind].describe(c),
    };
  }

  const applied = (c: ChangeRequest): Pick<ChangeRequest, 'appliedVersion' | 'appliedRef'> => {
    const out = KIND[c.kind as Kind].apply(c);
    return { appliedVersion: out.version ?? null, appliedRef: out.ref ?? null };
  };

  app.get('/api/v1/governance/settings', async (req) => settingsOf(access, deps.authorize(req.headers.authorization, 'plans:read').workspaceId));

  app.put<{ Body: GovernanceSettings }>(
    '/api/v1/governance/settings',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['approvalRequired'],
          properties: { approvalRequired: { type: 'object', additionalProperties: false, properties: Object.fromEntries(Object.keys(DEFAULT_APPROVAL).map((k) => [k, { type: 'boolean' }])) } },
        },
      },
    },
    async (req) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'tokens:manage');
      const settings = { approvalRequired: { ...settingsOf(access, workspaceId).approvalRequired, ...req.body.approvalRequired } };
      access.setGovernanceSettings(workspaceId, JSON.stringify(settings));
      return settings;
    },
  );

  type ProposeBody = { kind: Kind; target?: string; name?: string; definition: unknown; comment?: string };
  const byKind = (kind: Kind, definition: object, extra: object = {}) => ({ if: { properties: { kind: { const: kind } } }, then: { properties: { definition, ...extra } } });
  app.post<{ Body: ProposeBody }>(
    '/api/v1/change-requests',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'definition'],
          properties: { kind: { enum: KINDS }, target: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' }, name: { type: 'string', maxLength: 200 }, definition: { type: 'object' }, comment: { type: 'string', maxLength: 2000 } },
          allOf: [byKind('tracking_plan', PLAN_SCHEMA), byKind('destination', DESTINATION_SCHEMA), byKind('activation', ACTIVATION_SCHEMA), byKind('activation_fields', ACTIVATION_FIELDS_SCHEMA)],
        },
      },
    },
    async (req, reply) => {
      const token = deps.authorize(req.headers.authorization, 'changes:propose');
      const made = KIND[req.body.kind].propose(token, req.body);
      const request: ChangeRequest = {
        id: `chg_${crypto.randomUUID()}`, workspaceId: token.workspaceId, kind: req.body.kind, target: made.target, proposal: JSON.stringify(made.proposal), baseVersion: made.baseVersion,
        status: 'open', proposedBy: token.id, proposedAt: deps.now(), comment: req.body.comment ?? null, decidedBy: null, decidedAt: null, decisionComment: null, appliedVersion: null, appliedRef: null,
      };
      // Without review required the change applies at once, and is still recorded as a request.
      if (!KIND[req.body.kind].needsReview(request)) Object.assign(request, { status: 'applied', ...applied(request), decidedAt: deps.now() });
      access.saveChangeRequest(request);
      return reply.code(201).send(describe(request));
    },
  );

  app.get<{ Querystring: { status?: string } }>('/api/v1/change-requests', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'changes:propose');
    return { data: access.changeRequests(workspaceId, req.query.status).map(describe) };
  });

  const find = (workspaceId: string, id: string) => {
    const c = access.changeRequest(workspaceId, id);
    if (!c) throw new TandemError('not_found');
    return c;
  };

  app.get<{ Params: { id: string } }>('/api/v1/change-requests/:id', async (req) => describe(find(deps.authorize(req.headers.authorization, 'changes:propose').workspaceId, req.params.id)));

  for (const decision of ['approve', 'reject'] as const) {
    app.post<{ Params: { id: string }; Body: { comment?: string } }>(
      `/api/v1/change-requests/:id/${decision}`,
      { schema: { body: { type: 'object', additionalProperties: false, properties: { comment: { type: 'string', maxLength: 2000 } } } } },
      async (req) => {
        const token = deps.authorize(req.headers.authorization, 'changes:approve');
        const c = find(token.workspaceId, req.params.id);
        if (c.status !== 'open') throw new TandemError('invalid_request', `The request is ${c.status} already.`);
        if (c.proposedBy === token.id) throw new TandemError('invalid_request', 'Someone other than the proposer decides.');
        const decided = { ...c, decidedBy: token.id, decidedAt: deps.now(), decisionComment: req.body?.comment ?? null };
        if (decision === 'approve') Object.assign(decided, { status: 'approved', ...applied(c) });
        else decided.status = 'rejected';
        access.saveChangeRequest(decided);
        return describe(decided);
      },
    );
  }
}
