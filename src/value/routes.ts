import { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import type { ProfileReader, StoredFit, ValueJob } from '../profiles/ports.ts';
import type { Token } from '../store/ports.ts';
import { DEFAULT_SETTINGS, MODELS, trackingChart, type Diagnostics, type FitResult, type ValueSettings } from './clv.ts';
import type { FitRequest } from './fit-worker.ts';
import { PURCHASES_JOB, purchaseTraits, VALUE_KEYS, type FitRecord } from './scores.ts';

export type ValueRouteDeps = {
  profiles: ProfileReader;
  dataDir: string;
  authorize: (header: string | undefined, permission: 'value:read' | 'value:manage') => Token;
  /** Appends an admin event to the log and waits until the profile stage applied it. */
  adminEvent: (workspaceId: string, token: Token, body: Record<string, unknown>) => Promise<void>;
  /** How often the latest fit of each workspace is redone; 0 for never. */
  refreshMs: number;
  now: () => number;
};

type FitBody = {
  model?: 'bgnbd' | 'pareto_nbd';
  unit?: 'days' | 'weeks';
  calibrationEnd?: string;
  holdoutEnd?: string;
  purchaseEvents?: string[];
  revenueProperty?: string;
  horizonMonths?: number;
  monthlyDiscount?: number;
  tiers?: { high: number; medium: number };
};

const FIT_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    model: { enum: MODELS },
    unit: { enum: ['days', 'weeks'] },
    calibrationEnd: { type: 'string', minLength: 8, maxLength: 40 },
    holdoutEnd: { type: 'string', minLength: 8, maxLength: 40 },
    purchaseEvents: { type: 'array', minItems: 1, maxItems: 20, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 200 } },
    revenueProperty: { type: 'string', minLength: 1, maxLength: 200 },
    horizonMonths: { type: 'integer', minimum: 1, maximum: 120 },
    monthlyDiscount: { type: 'number', minimum: 0, maximum: 1 },
    tiers: { type: 'object', additionalProperties: false, required: ['high', 'medium'], properties: { high: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 }, medium: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } } },
  },
} as const;

type StoredValueFit = FitRecord & { id: string; request: Required<Omit<FitBody, 'calibrationEnd' | 'holdoutEnd'>> & { calibrationEnd: string }; settings: ValueSettings; diagnostics: Diagnostics; seconds: number };

function runFit(request: FitRequest): Promise<{ customers: number; tooFew?: string; result?: FitResult; diagnostics?: Diagnostics; seconds?: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./fit-worker.ts', import.meta.url), { workerData: request });
    worker.once('message', (m: { error?: string; customers: number }) => (m.error ? reject(new Error(m.error)) : resolve(m)));
    worker.once('error', reject);
  });
}

const summaryOf = (f: StoredFit) => {
  const v = f.fit as unknown as StoredValueFit;
  return {
    id: f.id,
    created_at: new Date(f.createdAt).toISOString(),
    request: v.request,
    model: v.result.model,
    params: v.result.params,
    log_likelihood: v.result.logLikelihood,
    customers: v.result.customers,
    seconds: v.seconds,
    spend: { model: 'gamma_gamma', params: v.result.spend.params, log_likelihood: v.result.spend.logLikelihood, customers: v.result.spend.customers },
    tiers: { quantiles: v.settings.tiers, clv_thresholds: v.result.thresholds },
  };
};

const progressOf = (j: ValueJob | undefined) =>
  j && { fit_id: j.fitId, status: j.finishedAt === null ? 'running' : 'done', profiles: { scored: j.scored, evaluated: j.profilesDone, total: j.profilesTotal }, started_at: new Date(j.startedAt).toISOString(), finished_at: j.finishedAt === null ? null : new Date(j.finishedAt).toISOString() };

/**
 * Lifetime value: fit a model on the workspace's purchases (in a worker thread), keep the fit
 * and its diagnostics, and score every profile with it in the background (computed traits).
 */
export async function valueRoutes(app: FastifyInstance, deps: ValueRouteDeps): Promise<void> {
  const { profiles } = deps;

  async function fit(token: Token, body: FitBody) {
    const request = {
      model: body.model ?? DEFAULT_SETTINGS.model,
      unit: body.unit ?? DEFAULT_SETTINGS.unit,
      purchaseEvents: body.purchaseEvents ?? ['Order Completed'],
      revenueProperty: body.revenueProperty ?? 'revenue',
      horizonMonths: body.horizonMonths ?? DEFAULT_SETTINGS.horizonMonths,
      monthlyDiscount: body.monthlyDiscount ?? DEFAULT_SETTINGS.monthlyDiscount,
      tiers: body.tiers ?? DEFAULT_SETTINGS.tiers,
    };
    if (request.tiers.medium >= request.tiers.high) throw new TandemError('invalid_request', 'tiers.medium must be below tiers.high.');
    const now = deps.now();
    const calibrationEnd = body.calibrationEnd === undefined ? now : Date.parse(body.calibrationEnd);
    if (Number.isNaN(calibrationEnd)) throw new TandemError('invalid_request', 'calibrationEnd must be a date.');
    const holdoutEnd = body.holdoutEnd === undefined ? undefined : Date.parse(body.holdoutEnd);
    if (holdoutEnd !== undefined && !(holdoutEnd >= calibrationEnd)) throw new TandemError('invalid_request', 'holdoutEnd must be a date on or after calibrationEnd.');
    const settings: ValueSettings = { model: request.model, unit: request.unit, horizonMonths: request.horizonMonths, monthlyDiscount: request.monthlyDiscount, tiers: request.tiers };
    // The purchases, kept per profile as hidden computed traits, filled from the log in the
    // background when new: the fit waits for them, the stage does not.
    await deps.adminEvent(token.workspaceId, token, { op: 'clv_purchases', events: request.purchaseEvents, property: request.revenueProperty });
    for (let b = profiles.backfill(token.workspaceId, PURCHASES_JOB); b && b.phase !== 'done'; b = profiles.backfill(token.workspaceId, PURCHASES_JOB)) await new Promise((r) => setTimeout(r, 50));
    const purchaseKeys = purchaseTraits(request.purchaseEvents, request.revenueProperty).map((t) => t.key);
    const started = performance.now();
    const out = await runFit({ dataDir: deps.dataDir, workspaceId: token.workspaceId, keys: purchaseKeys, settings, calibrationEnd, ...(holdoutEnd === undefined ? {} : { holdoutEnd }) });
    if (out.tooFew) throw new TandemError('too_few_customers', out.tooFew);
    if (out.customers === 0 || !out.result || !out.diagnostics) throw new TandemError('no_purchases');
    const id = `fit_${crypto.randomUUID()}`;
    const stored: StoredValueFit = { id, request: { ...request, calibrationEnd: new Date(calibrationEnd).toISOString() }, settings, result: out.result, diagnostics: out.diagnostics, purchaseKeys, asOf: calibrationEnd, seconds: (performance.now() - started) / 1000 };
    await deps.adminEvent(token.workspaceId, token, { op: 'clv_fit', fit: stored });
    const saved = profiles.fit(token.workspaceId, id);
    if (!saved) throw new TandemError('unavailable');
    return { ...summaryOf(saved), scoring: progressOf(profiles.valueJob(token.workspaceId)) };
  }

  /** The latest fit's request, to run again on the data as it is now (so without its calibration end). */
  function redo(workspaceId: string): { request: FitBody; createdAt: number } | undefined {
    const [latest] = profiles.fits(workspaceId, 1);
    if (!latest) return undefined;
    const { calibrationEnd: _, ...request } = (latest.fit as unknown as StoredValueFit).request;
    return { request, createdAt: latest.createdAt };
  }

  app.post<{ Body: FitBody }>('/api/v1/clv/fit', { schema: { body: FIT_BODY } }, async (req, reply) => reply.code(201).send(await fit(deps.authorize(req.headers.authorization, 'value:manage'), req.body ?? {})));

  /** On demand: the latest fit's request again, on the data as it is now. */
  app.post('/api/v1/clv/refresh', async (req, reply) => {
    const token = deps.authorize(req.headers.authorization, 'value:manage');
    const latest = redo(token.workspaceId);
    if (!latest) throw new TandemError('not_found', 'There is no fit to redo yet: POST /api/v1/clv/fit first.');
    return reply.code(201).send(await fit(token, latest.request));
  });

  app.get('/api/v1/clv/fits', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'value:read');
    return { data: profiles.fits(workspaceId, 100).map(summaryOf), scoring: progressOf(profiles.valueJob(workspaceId)) ?? null };
  });

  const findFit = (workspaceId: string, id: string) => {
    const f = profiles.fit(workspaceId, id);
    if (!f) throw new TandemError('not_found');
    return f;
  };

  app.get<{ Params: { id: string } }>('/api/v1/clv/fits/:id', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'value:read');
    const f = findFit(workspaceId, req.params.id);
    return { ...summaryOf(f), diagnostics: (f.fit as unknown as StoredValueFit).diagnostics };
  });

  app.get<{ Params: { id: string } }>('/api/v1/clv/fits/:id/chart.svg', async (req, reply) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'value:read');
    const v = findFit(workspaceId, req.params.id).fit as unknown as StoredValueFit;
    const title = `${v.result.model === 'bgnbd' ? 'BG/NBD' : 'Pareto/NBD'}: cumulative repeat transactions, ${v.result.customers} customers, calibration to ${v.request.calibrationEnd.slice(0, 10)}`;
    return reply.type('image/svg+xml').send(trackingChart(v.diagnostics, title));
  });

  /** Every scored profile, in profile id order, with a cursor. */
  app.get<{ Querystring: { after?: string; limit?: string } }>('/api/v1/clv/scores', async (req) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'value:read');
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TandemError('invalid_request', 'limit must be a whole number from 1 to 1000.');
    const rows = profiles.computedValuesAfter(VALUE_KEYS, req.query.after ?? '', limit).filter((r) => profiles.metadata(r.profileId)?.workspaceId === workspaceId);
    return { data: rows.map((r) => ({ profile_id: r.profileId, ...r.values })), next: rows.length === limit ? rows[rows.length - 1]!.profileId : null };
  });

  if (deps.refreshMs > 0) {
    // On a schedule: each workspace's latest fit redone on fresh data, as its owner asked for it.
    const timer = setInterval(() => {
      void (async () => {
        for (const workspaceId of profiles.fitWorkspaces()) {
          const latest = redo(workspaceId);
          if (!latest || deps.now() - latest.createdAt < deps.refreshMs) continue;
          await fit({ id: 'schedule', workspaceId, name: 'schedule', role: 'owner', pii: false, createdAt: 0, revokedAt: null }, latest.request).catch(() => {});
        }
      })();
    }, Math.min(deps.refreshMs, 3_600_000));
    timer.unref();
    app.addHook('onClose', async () => clearInterval(timer));
  }
}
