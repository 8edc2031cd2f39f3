import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ColumnStats } from '../store/ports.ts';

/** Prometheus metrics for one app instance. Labels carry codes and statuses only, never PII. */
export function createMetrics(probes: { stageLag?: () => number; columns?: () => ColumnStats | undefined; deliveriesPending?: () => number } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  /** A gauge read at scrape time (left unset while `read` has nothing). */
  const probe = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const value = read();
        if (value !== undefined) this.set(value);
      },
    });
  return {
    registry,
    events: new Counter({ name: 'tandem_ingest_events_total', help: 'Events received, by outcome', labelNames: ['status'] as const, registers: [registry] }),
    rejected: new Counter({ name: 'tandem_ingest_rejected_requests_total', help: 'Ingest requests rejected, by error code', labelNames: ['code'] as const, registers: [registry] }),
    ackLatency: new Histogram({ name: 'tandem_ingest_ack_seconds', help: 'Time from request start to acknowledgement', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry] }),
    commitSize: new Histogram({ name: 'tandem_log_commit_requests', help: 'Requests written per group commit', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
    stageLag: probe('tandem_profile_stage_lag_records', 'Log records committed but not yet applied by the profile stage', () => probes.stageLag?.()),
    columns: probe('tandem_profile_columns_kept', 'Columns of values audiences read that the profile stage keeps in memory (previews and time sweeps over them read no rows)', () => probes.columns?.()?.columns),
    columnProfiles: probe('tandem_profile_columns_profiles', 'Profiles indexed by the columns kept in memory', () => probes.columns?.()?.profiles),
    deliveries: new Counter({ name: 'tandem_deliveries_total', help: 'Webhook delivery attempts and decisions, by outcome (delivered, retried, dead, suppressed, skipped, cancelled)', labelNames: ['outcome'] as const, registers: [registry] }),
    deliveriesPending: probe('tandem_deliveries_pending', 'Webhook deliveries waiting to be sent or retried', () => probes.deliveriesPending?.()),
    commitSeconds: new Histogram({ name: 'tandem_log_commit_seconds', help: 'Duration of one group commit', buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1], registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
