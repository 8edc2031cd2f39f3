import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TandemError } from '../errors.ts';
import type { AccessStore, Token } from '../store/ports.ts';

/**
 * The audit log: who changed what (before and after), who was refused, and who read unmasked
 * PII, in an append-only table. Recorded by hooks around the admin API and the Profile API, so
 * no route can forget it; routes that know the state before a change hand it over with `before`.
 */
const tokens = new WeakMap<FastifyRequest, Token>();
const befores = new WeakMap<FastifyRequest, unknown>();

/** The caller, once a route resolved the credentials (set by the authorize wrappers). */
export const rememberCaller = (request: FastifyRequest, token: Token) => void tokens.set(request, token);
/** What the change is about to replace, for the audit entry. */
export const before = (request: FastifyRequest, value: unknown) => void befores.set(request, value);

/** Body fields never written to the audit log. */
const SECRET = /^(password|token|secret|writeKey|key)$/i;
const redact = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(redact);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET.test(k) ? '[redacted]' : redact(v)]));
};

/** Admin routes whose answers carry personal data (unmasked only with the `pii` permission). */
export const ADMIN_PII_ROUTES = new Set(['/api/v1/events', '/api/v1/events/stream', '/api/v1/profiles/:ref/identities', '/api/v1/audience-events', '/api/v1/violations', '/api/v1/destinations/:id/deliveries']);

/**
 * Unmasked reads through the Profile API, one audit entry per token, route and minute with how
 * many reads and the first few profiles read; flushed every ten seconds and on close.
 */
export function auditReads(store: AccessStore, now: () => number) {
  type Bucket = { token: Token; route: string; minute: number; reads: number; sample: unknown[] };
  const buckets = new Map<string, Bucket>();
  const flush = () => {
    for (const b of buckets.values()) {
      store.appendAudit({ workspaceId: b.token.workspaceId, at: b.minute, actor: b.token.id, role: b.token.role, action: 'read_pii', route: b.route, target: JSON.stringify({ reads: b.reads, sample: b.sample }), status: 200, before: null, after: null });
    }
    buckets.clear();
  };
  const timer = setInterval(flush, 10_000);
  timer.unref();
  return {
    record(request: FastifyRequest, status: number): void {
      const token = tokens.get(request);
      if (!token || status >= 400) return;
      if (!token.pii) return;
      const route = `${request.method} ${request.routeOptions.url ?? ''}`;
      const minute = Math.floor(now() / 60_000) * 60_000;
      const key = `${token.id}|${route}|${minute}`;
      let b = buckets.get(key);
      if (!b) buckets.set(key, (b = { token, route, minute, reads: 0, sample: [] }));
      b.reads++;
      if (b.sample.length < 5) b.sample.push(request.params);
    },
    flush(): void {
      clearInterval(timer);
      flush();
    },
  };
}

export function auditHooks(app: FastifyInstance, store: AccessStore, options: { piiRoutes: (url: string) => boolean; now: () => number }): void {
  app.addHook('onResponse', async (request, reply) => {
    const token = tokens.get(request);
    if (!token) return;
    const route = `${request.method} ${request.routeOptions.url ?? request.url}`;
    const status = reply.statusCode;
    const change = request.method !== 'GET' && request.method !== 'HEAD' && status < 400;
    const action = status === 403 ? 'denied' : change ? 'change' : status < 400 && token.pii && options.piiRoutes(request.routeOptions.url ?? '') ? 'read_pii' : null;
    if (!action) return;
    const was = befores.get(request);
    store.appendAudit({
      workspaceId: token.workspaceId,
      at: options.now(),
      actor: token.id,
      role: token.role,
      action,
      route,
      target: JSON.stringify({ ...(request.params as object), ...(action === 'read_pii' ? { query: request.query } : {}) }),
      status,
      before: was === undefined ? null : JSON.stringify(redact(was)),
      after: action === 'change' && request.body !== undefined ? JSON.stringify(redact(request.body)) : null,
    });
  });
}

/** Owners query and export the audit log. */
export async function auditRoutes(app: FastifyInstance, deps: { store: AccessStore; authorize: (header: string | undefined, permission: 'audit:read') => Token }): Promise<void> {
  const entries = (workspaceId: string, q: { after?: string; limit?: string; action?: string; actor?: string }, max: number) => {
    const after = q.after === undefined ? 0 : Number(q.after);
    const limit = q.limit === undefined ? Math.min(100, max) : Number(q.limit);
    if (!Number.isSafeInteger(after) || after < 0) throw new TandemError('invalid_cursor');
    if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new TandemError('invalid_request', `limit must be a whole number from 1 to ${max}.`);
    return deps.store.audit(workspaceId, { after, limit, ...(q.action ? { action: q.action } : {}), ...(q.actor ? { actor: q.actor } : {}) }).map((e) => ({
      id: e.id,
      at: new Date(e.at).toISOString(),
      actor: e.actor,
      role: e.role,
      action: e.action,
      route: e.route,
      target: JSON.parse(e.target) as unknown,
      status: e.status,
      before: e.before === null ? null : (JSON.parse(e.before) as unknown),
      after: e.after === null ? null : (JSON.parse(e.after) as unknown),
    }));
  };
  type Q = { Querystring: { after?: string; limit?: string; action?: string; actor?: string } };
  app.get<Q>('/api/v1/audit', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'audit:read');
    const data = entries(workspaceId, req.query, 1000);
    return { data, next: data.length > 0 ? String(data[data.length - 1]!.id) : (req.query.after ?? '0') };
  });
  /** Everything after the cursor as NDJSON, for archiving elsewhere. */
  app.get<Q>('/api/v1/audit/export', async (req, reply) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'audit:read');
    const lines: string[] = [];
    for (let after = req.query.after ?? '0'; ; ) {
      const page = entries(workspaceId, { ...req.query, after, limit: '1000' }, 1000);
      for (const e of page) lines.push(JSON.stringify(e));
      if (page.length < 1000) break;
      after = String(page[page.length - 1]!.id);
    }
    return reply.type('application/x-ndjson').send(lines.length ? `${lines.join('\n')}\n` : '');
  });
}
