import cors from '@fastify/cors';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { basicUsername, type Credentials } from '../access/credentials.ts';
import type { LiveFeed } from '../bus/live.ts';
import { TandemError } from '../errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { IngestOutcome, IngestRequest } from './accept.ts';
import type { IngestKind } from './normalize.ts';
import type { StageHandle } from '../store/ports.ts';
import { analyticsJsSettings } from './settings.ts';

export type IngestRouteDeps = {
  accept: (req: IngestRequest) => Promise<IngestOutcome>;
  credentials: Credentials;
  live: LiveFeed;
  metrics: Metrics;
  /** Woken after each commit. */
  stage: StageHandle | undefined;
};

const PATHS: Record<string, IngestKind> = {
  '/v1/identify': 'identify', '/v1/i': 'identify',
  '/v1/track': 'track', '/v1/t': 'track',
  '/v1/page': 'page', '/v1/p': 'page',
  '/v1/screen': 'screen', '/v1/s': 'screen',
  '/v1/group': 'group', '/v1/g': 'group',
  '/v1/alias': 'alias', '/v1/a': 'alias',
  '/v1/batch': 'batch', '/v1/b': 'batch', '/b': 'batch', '/v1/import': 'batch',
};

/** The Segment-compatible Tracking API. Errors use `{success: false, error: {code, message}}`. */
export async function ingestRoutes(app: FastifyInstance, deps: IngestRouteDeps): Promise<void> {
  await app.register(cors, { origin: true, methods: ['GET', 'POST'], allowedHeaders: ['Content-Type', 'Authorization', 'Content-Encoding'], maxAge: 86400 });

  const { metrics } = deps;
  const handle = (kind: IngestKind) => async (request: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    const raw = request.body;
    if (!Buffer.isBuffer(raw)) throw new TandemError('invalid_json', 'The body is empty.');
    const outcome = await deps.accept({ kind, raw, contentEncoding: request.headers['content-encoding'], basicKey: basicUsername(request.headers.authorization), keepRecord: deps.live.size > 0 });
    deps.stage?.notify();
    if (outcome.record && deps.live.size > 0) deps.live.publish(outcome.record);
    metrics.events.inc({ status: 'accepted' }, outcome.accepted);
    if (outcome.flagged) metrics.events.inc({ status: 'flagged' }, outcome.flagged);
    if (outcome.quarantined) metrics.events.inc({ status: 'quarantined' }, outcome.quarantined);
    if (outcome.duplicates) metrics.events.inc({ status: 'duplicate' }, outcome.duplicates);
    metrics.ackLatency.observe((performance.now() - started) / 1000);
    return reply.send({ success: true });
  };
  for (const [path, kind] of Object.entries(PATHS)) app.post(path, handle(kind));

  app.get<{ Params: { writeKey: string } }>('/v1/projects/:writeKey/settings', async (request, reply) => {
    const key = deps.credentials.writeKey(request.params.writeKey);
    if (!key) throw new TandemError('not_found');
    return reply.header('cache-control', 'public, max-age=300').send(analyticsJsSettings(key.key, `${request.host}/v1`, request.protocol));
  });
}
