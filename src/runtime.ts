import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { bootstrap, type Bootstrap } from './access/admin.ts';
import { Deliverer } from './activate/deliver.ts';
import { createPoster, parseAllowList } from './activate/webhook.ts';
import { buildApp, logger as makeLogger, timePolicy } from './app.ts';
import type { Config } from './config.ts';
import { JudgePool } from './ingest/judge-pool.ts';
import { IngestPressure } from './ops/ingest-pressure.ts';
import { createMetrics } from './ops/metrics.ts';
import type { Stores } from './store/ports.ts';
import { openSqliteStores } from './store/sqlite/index.ts';

export type Tandem = {
  app: FastifyInstance;
  stores: Stores;
  bootstrap: Bootstrap;
  /** Starts the ingest threads; a server awaits it before listening, so its first requests wait for nothing. */
  start: () => Promise<void>;
  /** Sends webhook deliveries (see activate/deliver.ts). */
  deliverer: Deliverer;
  close: () => Promise<void>;
};

/** The composition root: stores, metrics, first-start bootstrap and the app, ready to listen. */
export async function openTandem(config: Config, options: { logger?: Logger; now?: () => number } = {}): Promise<Tandem> {
  // Read at scrape time, once the stores below exist.
  const metrics = createMetrics({ stageLag: () => stores.log.lastId() - stores.profiles.checkpoint(), columns: () => stores.stage?.columns?.(), deliveriesPending: () => stores.activation.pending() });
  const log = options.logger ?? makeLogger(config.logLevel);
  const pressure = new IngestPressure();
  const stores = openSqliteStores({
    ingestPressure: pressure.shared,
    dataDir: config.dataDir,
    sync: config.sync,
    dedupeWindowMs: config.dedupeWindowMs,
    stage: true,
    columnsMaxProfiles: config.columnsMaxProfiles,
    onStageError: (error) => (options.logger ?? log).error({ error }, 'profile stage failed'),
    onCommit: (entries, seconds) => {
      metrics.commitSize.observe(entries);
      metrics.commitSeconds.observe(seconds);
    },
    onLogLoaded: (ids, seconds) => log.info({ ids, seconds: Math.round(seconds * 1000) / 1000 }, 'event log ready: dedupe window loaded'),
  });
  const boot = bootstrap(stores.access, { writeKey: config.writeKey, adminToken: config.adminToken });
  // Requests are judged on ingest threads when the stores can be reopened there.
  const judges = stores.location && config.ingestThreads > 0 ? new JudgePool({ store: stores.location, policy: timePolicy(config), maxBodyBytes: config.maxBodyBytes }, config.ingestThreads) : undefined;
  const app = await buildApp(config, { stores, metrics, logger: log, pressure, ...(judges ? { judges } : {}), ...(options.now ? { now: options.now } : {}) });
  // Audience entries and exits, and event streams, out to webhooks, from the queue in the stores.
  const deliverer = new Deliverer({
    store: stores.activation,
    profiles: stores.profiles,
    log: stores.log,
    poster: createPoster({ allow: parseAllowList(config.destinationAllowHosts), timeoutMs: config.deliveryTimeoutMs, userAgent: 'Tandem-Webhooks/0.1' }),
    maxAttempts: config.deliveryMaxAttempts,
    retryBaseMs: config.deliveryRetryMs,
    perDestination: config.deliveryConcurrency,
    ...(options.now ? { now: options.now } : {}),
    onOutcome: (outcome) => metrics.deliveries.inc({ outcome }),
    onError: (err) => log.error({ err }, 'webhook delivery failed'),
  });
  deliverer.start();
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= app.close().then(async () => {
    await deliverer.close();
    await judges?.close();
    await stores.close();
  }));
  return { app, stores, bootstrap: boot, deliverer, start: async () => judges?.start(), close };
}
