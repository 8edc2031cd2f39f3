import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import { forRecentVerdicts } from '../ingest/event-view.ts';
import type { AccessStore, ChangeRequest, EventLog, Token } from '../store/ports.ts';
import type { ProfileReader } from '../profiles/ports.ts';
import { diffPlans, referencing, touchedEvents } from './changes.ts';
import { compilePlan, PLAN_SCHEMA, PlanError, type PlanDefinition } from './tracking-plan.ts';

export type ChangeDeps = {
  access: AccessStore;
  log: EventLog;
  profiles: ProfileReader;
  invalidate: () => void;
  authorize: (header: string | undefined, permission: 'changes:propose' | 'changes:approve' | 'plans:read' | 'tokens:manage') => Token;
  now: () => number;
};

/** Which changes a workspace wants reviewed before they apply. */
export type GovernanceSettings = { approvalRequired: { tracking_plan: boolean } };
const DEFAULT_SETTINGS: GovernanceSettings = { approvalRequired: { tracking_plan: true } };
const KINDS = ['tracking_plan'] as const;
const DAY = 86_400_000;
/** Log records read at most to count an event's volume. */
const VOLUME_RECORDS = 20_000;

/**
 * Change requests: a marketer proposes a change that needs IT's consent (today: a tracking plan
 * change, such as a new event or property); an engineer approves or rejects it with a comment;
 * an approved change applies atomically, unless the plan moved on meanwhile. Each request shows
 * its diff and its impact: audiences and computed traits reading the events it touches, their
 * volume over the last 7 days, and personal data added or removed.
 */
export async function changeRoutes(app: FastifyInstance, deps: ChangeDeps): Promise<void> {
  const { access } = deps;
  const settingsOf = (workspaceId: string): GovernanceSettings => ({ ...DEFAULT_SETTINGS, ...(JSON.parse(access.governanceSettings(workspaceId) ?? '{}') as Partial<GovernanceSettings>) });

  /** Events seen per touched name over the last 7 days, from the newest part of the log. */
  function volume(workspaceId: string, names: string[]): Record<string, number> {
    const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    forRecentVerdicts(deps.log, workspaceId, deps.now() - 7 * DAY, VOLUME_RECORDS, (_record, v) => {
      const name = v.type === 'page' || v.type === 'screen' ? `${v.type}:${v.event ?? ''}` : v.event;
      if (name !== undefined && name in counts && v.status !== 'duplicate') counts[name]!++;
    });
    return counts;
  }

  function describe(c: ChangeRequest) {
    const proposal = JSON.parse(c.proposal) as { name: string; definition: PlanDefinition };
    const base = c.baseVersion === null ? undefined : access.plan(c.workspaceId, c.target, c.baseVersion);
    const diff = diffPlans(base ? (JSON.parse(base.definition) as PlanDefinition) : {}, proposal.definition);
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      id: c.id,
      kind: c.kind,
      target: c.target,
      status: c.status,
      base_version: c.baseVersion,
      applied_version: c.appliedVersion,
      proposed_by: c.proposedBy,
      proposed_at: iso(c.proposedAt),
      comment: c.comment,
      decided_by: c.decidedBy,
      decided_at: iso(c.decidedAt),
      decision_comment: c.decisionComment,
      proposal,
      diff,
      impact: { ...referencing(diff, deps.profiles.audiences(c.workspaceId), deps.profiles.computedTraits(c.workspaceId)), volume_7d: volume(c.workspaceId, touchedEvents(diff)), pii: diff.pii },
    };
  }

  function apply(c: ChangeRequest): number {
    const proposal = JSON.parse(c.proposal) as { name: string; definition: PlanDefinition };
    const current = access.plan(c.workspaceId, c.target)?.version ?? null;
    if (current !== c.baseVersion) throw new TandemError('stale_change', `The plan is at version ${current} now, the request was made on ${c.baseVersion}; propose it again.`);
    const saved = access.savePlan(c.workspaceId, c.target, proposal.name, JSON.stringify(proposal.definition));
    deps.invalidate();
    return saved.version;
  }

  app.get('/api/v1/governance/settings', async (req) => settingsOf(deps.authorize(req.headers.authorization, 'plans:read').workspaceId));

  app.put<{ Body: GovernanceSettings }>(
    '/api/v1/governance/settings',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['approvalRequired'], properties: { approvalRequired: { type: 'object', additionalProperties: false, properties: { tracking_plan: { type: 'boolean' } } } } } } },
    async (req) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'tokens:manage');
      const settings = { approvalRequired: { ...DEFAULT_SETTINGS.approvalRequired, ...req.body.approvalRequired } };
      access.setGovernanceSettings(workspaceId, JSON.stringify(settings));
      return settings;
    },
  );

  app.post<{ Body: { kind: (typeof KINDS)[number]; target: string; name?: string; definition: PlanDefinition; comment?: string } }>(
    '/api/v1/change-requests',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'target', 'definition'],
          properties: { kind: { enum: KINDS }, target: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' }, name: { type: 'string', maxLength: 200 }, definition: PLAN_SCHEMA, comment: { type: 'string', maxLength: 2000 } },
        },
      },
    },
    async (req, reply) => {
      const token = deps.authorize(req.headers.authorization, 'changes:propose');
      try {
        compilePlan(req.body.definition);
      } catch (err) {
        if (err instanceof PlanError) throw new TandemError('invalid_plan', err.message);
        throw err;
      }
      const base = access.plan(token.workspaceId, req.body.target);
      const request: ChangeRequest = {
        id: `chg_${crypto.randomUUID()}`, workspaceId: token.workspaceId, kind: req.body.kind, target: req.body.target,
        proposal: JSON.stringify({ name: req.body.name ?? base?.name ?? req.body.target, definition: req.body.definition }), baseVersion: base?.version ?? null,
        status: 'open', proposedBy: token.id, proposedAt: deps.now(), comment: req.body.comment ?? null, decidedBy: null, decidedAt: null, decisionComment: null, appliedVersion: null,
      };
      // Without review required the change applies at once, and is still recorded as a request.
      if (!settingsOf(token.workspaceId).approvalRequired.tracking_plan) Object.assign(request, { status: 'applied', appliedVersion: apply(request), decidedAt: deps.now() });
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
        if (decision === 'approve') Object.assign(decided, { status: 'approved', appliedVersion: apply(c) });
        else decided.status = 'rejected';
        access.saveChangeRequest(decided);
        return describe(decided);
      },
    );
  }
}
