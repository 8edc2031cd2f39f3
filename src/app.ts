import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino, { type Logger } from 'pino';
import { createAccessAdmin } from './access/admin.ts';
import { allows, authorize, authorizeBasic, createCredentials, type Permission } from './access/credentials.ts';
import { createActivationAdmin } from './activate/admin.ts';
import { activationRoutes } from './activate/routes.ts';
import { parseAllowList } from './activate/webhook.ts';
import { accessRoutes } from './access/routes.ts';
import { LiveFeed } from './bus/live.ts';
import type { Config } from './config.ts';
import { ERRORS, TandemError, type ErrorCode } from './errors.ts';
import { createIngest } from './ingest/accept.ts';
import { createJudge } from './ingest/judge.ts';
import type { JudgePool } from './ingest/judge-pool.ts';
import type { IngestPressure } from './ops/ingest-pressure.ts';
import { eventsApi } from './ingest/events-api.ts';
import { ingestRoutes } from './ingest/routes.ts';
import type { Metrics } from './ops/metrics.ts';
import { valueRoutes } from './value/routes.ts';
import { governanceRoutes } from './governance/routes.ts';
import { changeRoutes } from './governance/change-routes.ts';
import { userRoutes } from './access/users.ts';
import { createPiiPolicy } from './governance/pii.ts';
import { ADMIN_PII_ROUTES, auditHooks, auditReads, auditRoutes, rememberCaller } from './governance/audit.ts';
import { openApiDocument } from './ops/openapi.ts';
import { audienceRoutes } from './audiences/routes.ts';
import { createAdminEvents, profileAdminRoutes } from './profiles/admin-routes.ts';
import { profileApi } from './profiles/profile-api.ts';
import type { Stores } from './store/ports.ts';

export type AppDeps = {
  stores: Stores;
  metrics: Metrics;
  logger?: Logger;
  now?: () => number;
  /** Ingest threads that judge requests (the server's); without them, requests are judged on the HTTP thread. */
  judges?: JudgePool;
  /** Counts requests in flight for the profile stage (runtime.ts shares it with the stage's thread). */
  pressure?: IngestPressure;
};

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'invalid_request',
  FST_ERR_VALIDATION: 'invalid_request',
  FST_ERR_BAD_URL: 'invalid_request',
  FST_ERR_MAX_PARAM_LENGTH: 'url_too_long',
  FST_ERR_ASYNC_CONSTRAINT: 'invalid_request',
};

/** Ingest routes answer Segment's error shape; every other API answers `{error: {code, message}}`. */
const isIngestUrl = (url: string): boolean => url === '/b' || (url.startsWith('/v1/') && !url.startsWith('/v1/spaces/'));
const isProfileApiUrl = (url: string): boolean => url.startsWith('/v1/spaces/');

/** The Profile API speaks Segment's error codes. */
function profileApiCode(code: ErrorCode): string {
  switch (code) {
    case 'unauthorized':
    case 'forbidden':
      return 'authentication_error';
    case 'invalid_request':
      return 'validation_error';
    case 'not_found':
      return 'not_found';
    case 'rate_limited':
      return 'rate_limit_error';
    default:
      return ERRORS[code].status < 500 ? 'invalid_request_error' : 'server_error';
  }
}

export function logger(level: string): Logger {
  return pino({ level, redact: { paths: ['req.headers.authorization', 'writeKey', 'token', 'adminToken'], censor: '[redacted]' } });
}

export const timePolicy = (config: Config) => ({ futureToleranceMs: config.futureToleranceMs, minTimestampMs: config.minTimestampMs });

/** Builds the whole application from its configuration and its stores, without listening. */
export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const { stores, metrics } = deps;
  const now = deps.now ?? Date.now;
  const log = deps.logger ?? logger(config.logLevel);
  /** Every error, Fastify's own included, answered with a registry code in its API's shape. */
  function answerError(err: FastifyError | TandemError, request: FastifyRequest, reply: FastifyReply) {
    let code: ErrorCode;
    if (err instanceof TandemError) code = err.code;
    else if (err.code && FASTIFY_CODES[err.code]) code = FASTIFY_CODES[err.code]!;
    else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) code = err.statusCode === 413 ? 'body_too_large' : err.statusCode === 404 ? 'not_found' : 'invalid_request';
    else code = 'internal_error';
    if (code === 'internal_error' || code === 'unavailable') request.log.error({ err, url: request.routeOptions.url }, 'request failed');
    const status = ERRORS[code].status;
    const message = err instanceof TandemError ? err.message : ERRORS[code].message;
    if (code === 'rate_limited') reply.header('retry-after', '1');
    if (isProfileApiUrl(request.url)) return reply.code(status).send({ error: { code: profileApiCode(code), message } });
    if (isIngestUrl(request.url)) {
      metrics.rejected.inc({ code });
      return reply.code(status).send({ success: false, error: { code, message } });
    }
    return reply.code(status).send({ error: { code, message } });
  }

  const app = Fastify({
    frameworkErrors: answerError,
    // Identifiers reach 1,024 characters, percent-encoded up to three times that.
    routerOptions: { maxParamLength: 4096 },
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.maxBodyBytes,
    requestTimeout: config.requestTimeoutMs,
    http: { headersTimeout: Math.min(10_000, config.requestTimeoutMs), connectionsCheckingInterval: Math.min(1_000, config.requestTimeoutMs / 2) },
    connectionTimeout: config.requestTimeoutMs,
    return503OnClosing: true,
    // Unknown or mistyped fields are errors, not silently dropped or coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    forceCloseConnections: true,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.maxBodyBytes }, (request, body, done) => {
    if (!request.url.startsWith('/api/')) return done(null, body);
    try {
      done(null, (body as Buffer).length === 0 ? undefined : JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      done(new TandemError('invalid_json'));
    }
  });

  app.setErrorHandler(answerError);
  app.setNotFoundHandler((request, reply) => reply.code(404).send(isIngestUrl(request.url) ? { success: false, error: { code: 'not_found', message: ERRORS.not_found.message } } : { error: { code: 'not_found', message: ERRORS.not_found.message } }));

  const credentials = createCredentials(stores.access);
  const maskerFor = createPiiPolicy(stores.access);
  const live = new LiveFeed();
  const stage = stores.stage;

  const pool = deps.judges;
  const judgeHere = createJudge({ resolveWriteKey: (key) => credentials.writeKey(key), sourcePlan: (sourceId) => credentials.sourcePlan(sourceId), policy: timePolicy(config), maxBodyBytes: config.maxBodyBytes });
  const accept = createIngest({
    log: stores.log,
    // On the ingest threads; on this one while none is ready (one that cannot start is retried after a pause).
    judge: pool ? (input) => (pool.usable() ? pool.judge(input) : judgeHere(input)) : judgeHere,
    ...(pool ? { judgePendingBytes: () => pool.pendingBytes() } : {}),
    ...(deps.pressure ? { pressure: deps.pressure } : {}),
    maxPendingBytes: config.maxPendingBytes,
    now,
  });
  await app.register(async (scope) => ingestRoutes(scope, { accept, credentials, live, metrics, stage }));

  await app.register(async (admin) => {
    const adminRoutes: Array<{ method: string | string[]; url: string; schema?: { body?: unknown; querystring?: unknown } }> = [];
    admin.addHook('onRoute', (route) => void adminRoutes.push({ method: route.method, url: route.url, schema: route.schema as { body?: unknown; querystring?: unknown } }));
    admin.addHook('onRequest', async (request) => {
      const origin = request.headers.origin;
      if (origin !== undefined && origin !== `${request.protocol}://${request.host}`) throw new TandemError('cross_origin_forbidden');
      const bearer = /^Bearer ([\x21-\x7e]{1,512})$/.exec(request.headers.authorization ?? '');
      const caller = bearer ? credentials.token(bearer[1]!) : undefined;
      if (caller) rememberCaller(request, caller);
    });
    auditHooks(admin, stores.access, { piiRoutes: (url) => ADMIN_PII_ROUTES.has(url), now });
    const check = (header: string | undefined, permission: Permission) => authorize(credentials, header, permission);
    await auditRoutes(admin, { store: stores.access, authorize: check });
    await userRoutes(admin, { store: stores.access, authorize: check, invalidate: credentials.invalidate });
    await eventsApi(admin, { log: stores.log, live, authorize: (h) => check(h, 'events:read'), maskerFor });
    await accessRoutes(admin, { admin: createAccessAdmin(stores.access, credentials.invalidate), authorize: check });
    await profileAdminRoutes(admin, { profiles: stores.profiles, log: stores.log, stage: stores.stage, authorize: check, maskerFor, now });
    const adminEvent = createAdminEvents({ log: stores.log, stage: stores.stage, now });
    await audienceRoutes(admin, { profiles: stores.profiles, authorize: check, adminEvent, maskerFor });
    await governanceRoutes(admin, {
      access: stores.access,
      log: stores.log,
      stage: stores.stage,
      policy: { futureToleranceMs: config.futureToleranceMs, minTimestampMs: config.minTimestampMs },
      sourcePlan: (sourceId) => credentials.sourcePlan(sourceId),
      invalidate: credentials.invalidate,
      authorize: check,
      maskerFor,
    });
    const activations = createActivationAdmin({ store: stores.activation, profiles: stores.profiles, access: stores.access, allow: parseAllowList(config.destinationAllowHosts), now });
    await activationRoutes(admin, { store: stores.activation, access: stores.access, admin: activations, authorize: check, can: allows, maskerFor, log: stores.log, now });
    await changeRoutes(admin, { access: stores.access, log: stores.log, profiles: stores.profiles, activations, activationStore: stores.activation, invalidate: credentials.invalidate, authorize: check, now });
    await valueRoutes(admin, { profiles: stores.profiles, dataDir: config.dataDir, authorize: check, adminEvent, refreshMs: config.clvRefreshMs, now });
    let document: ReturnType<typeof openApiDocument> | undefined;
    admin.get('/api/v1/openapi.json', async () => (document ??= openApiDocument(adminRoutes)));
  });

  await app.register(async (scope) => {
    // Profile API reads come by the thousand per second: unmasked reads are audited per token and minute.
    const reads = auditReads(stores.access, now);
    scope.addHook('onResponse', async (request, reply) => reads.record(request, reply.statusCode));
    scope.addHook('onClose', async () => reads.flush());
    const authenticate = (request: FastifyRequest) => {
      const token = authorizeBasic(credentials, request.headers.authorization, 'profiles:read');
      rememberCaller(request, token);
      return token;
    };
    await profileApi(scope, { profiles: stores.profiles, log: stores.log, authenticate, maskerFor });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    let ok = false;
    try {
      ok = stores.ready();
    } catch {
      ok = false;
    }
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable' });
  });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  return app;
}

