import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { bootstrap, type Bootstrap } from './access/admin.ts';
import { buildApp, logger as makeLogger } from './app.ts';
import type { Config } from './config.ts';
import { createMetrics } from './ops/metrics.ts';
import type { Stores } from './store/ports.ts';
import { openSqliteStores } from './store/sqlite/index.ts';

export type Tandem = { app: FastifyInstance; stores: Stores; bootstrap: Bootstrap; close: () => Promise<void> };

/** The composition root: stores, metrics, first-start bootstrap and the app, ready to listen. */
export async function openTandem(config: Config, options: { logger?: Logger; now?: () => number } = {}): Promise<Tandem> {
  // Read at scrape time, once the stores below exist.
  const metrics = createMetrics({ stageLag: () => stores.log.lastId() - stores.profiles.checkpoint() });
  const log = options.logger ?? makeLogger(config.logLevel);
  const stores = openSqliteStores({
    dataDir: config.dataDir,
    sync: config.sync,
    dedupeWindowMs: config.dedupeWindowMs,
    stage: true,
    onStageError: (error) => (options.logger ?? log).error({ error }, 'profile stage failed'),
    onCommit: (entries, seconds) => {
      metrics.commitSize.observe(entries);
      metrics.commitSeconds.observe(seconds);
    },
  });
  const boot = bootstrap(stores.access, { writeKey: config.writeKey, adminToken: config.adminToken });
  const app = await buildApp(config, { stores, metrics, logger: log, ...(options.now ? { now: options.now } : {}) });
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= app.close().then(() => stores.close()));
  return { app, stores, bootstrap: boot, close };
}
