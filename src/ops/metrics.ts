import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics for one app instance. Labels carry codes and statuses only, never PII. */
export function createMetrics(probes: { stageLag?: () => number; columns?: () => { columns: number; profiles: number } | undefined } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    events: new Counter({ name: 'tandem_ingest_events_total', help: 'Events received, by outcome', labelNames: ['status'] as const, registers: [registry] }),
    rejected: new Counter({ name: 'tandem_ingest_rejected_requests_total', help: 'Ingest requests rejected, by error code', labelNames: ['code'] as const, registers: [registry] }),
    ackLatency: new Histogram({ name: 'tandem_ingest_ack_seconds', help: 'Time from request start to acknowledgement', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry] }),
    commitSize: new Histogram({ name: 'tandem_log_commit_requests', help: 'Requests written per group commit', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
    stageLag: new Gauge({
      name: 'tandem_profile_stage_lag_records',
      help: 'Log records committed but not yet applied by the profile stage',
      registers: [registry],
      collect() {
        if (probes.stageLag) this.set(probes.stageLag());
      },
    }),
    columns: new Gauge({
      name: 'tandem_profile_columns_kept',
      help: 'Columns of values audiences read that the profile stage keeps in memory (previews and time sweeps over them read no rows)',
      registers: [registry],
      collect() {
        const c = probes.columns?.();
        if (c) this.set(c.columns);
      },
    }),
    columnProfiles: new Gauge({
      name: 'tandem_profile_columns_profiles',
      help: 'Profiles indexed by the columns kept in memory',
      registers: [registry],
      collect() {
        const c = probes.columns?.();
        if (c) this.set(c.profiles);
      },
    }),
    commitSeconds: new Histogram({ name: 'tandem_log_commit_seconds', help: 'Duration of one group commit', buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1], registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
