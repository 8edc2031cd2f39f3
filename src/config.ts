import { availableParallelism } from 'node:os';
import { Ajv } from 'ajv';

/** Every TANDEM_* variable, its type, default and meaning. The README's table is generated from this. */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: true,
  properties: {
    TANDEM_PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 8080, description: 'TCP port to listen on (0 picks a free one).' },
    TANDEM_HOST: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Address to listen on.' },
    TANDEM_DATA_DIR: { type: 'string', minLength: 1, default: './data', description: 'Folder for the embedded SQLite files.' },
    TANDEM_ADMIN_TOKEN: { type: 'string', minLength: 16, description: 'Bootstrap owner token, used on first start only; generated and printed when absent.' },
    TANDEM_WRITE_KEY: { type: 'string', minLength: 8, maxLength: 200, description: 'Write key of the default source, used on first start only; generated and printed when absent.' },
    TANDEM_DEDUPE_WINDOW_HOURS: { type: 'number', exclusiveMinimum: 0, default: 24, description: 'How long a messageId is remembered for deduplication.' },
    TANDEM_MAX_BODY_BYTES: { type: 'integer', minimum: 1024, default: 1048576, description: 'Hard cap on a request body, compressed or inflated; enforced while reading (413).' },
    TANDEM_MAX_PENDING_BYTES: { type: 'integer', minimum: 1048576, default: 67108864, description: 'Bytes waiting for commit above which ingest answers 429 with Retry-After.' },
    TANDEM_REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 1000, default: 30000, description: 'A request body that has not fully arrived by then is answered 408 and dropped.' },
    TANDEM_FUTURE_TOLERANCE_HOURS: { type: 'number', minimum: 0, default: 24, description: 'Timestamps further ahead of receivedAt than this are clamped to receivedAt and flagged.' },
    TANDEM_MIN_TIMESTAMP: { type: 'string', format: 'date-time', default: '1970-01-01T00:00:00Z', description: 'Timestamps before this are clamped to receivedAt and flagged.' },
    TANDEM_LOG_LEVEL: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info', description: 'pino log level.' },
    TANDEM_SYNC: { type: 'string', enum: ['full', 'normal'], default: 'full', description: '`full` fsyncs every group commit (power-loss safe); `normal` survives process crashes only.' },
    TANDEM_INGEST_THREADS: { type: 'integer', minimum: 0, maximum: 64, description: 'Threads that parse and check ingest requests beside the HTTP thread; 0 does it on the HTTP thread. Default: CPUs − 1, at least 2.' },
    TANDEM_COLUMNS_MAX_PROFILES: { type: 'integer', minimum: 0, default: 5000000, description: 'The profile stage keeps what audiences read in memory (measured: ~53 bytes per profile for the list, ~35 per profile per column of short strings) for workspaces of up to this many live profiles; larger ones, or all with 0, have previews and time sweeps read rows.' },
    TANDEM_DESTINATION_ALLOW_HOSTS: { type: 'string', default: '', description: 'Comma-separated host names (`*.example.com` for subdomains), IP addresses and networks (CIDR) that webhooks may reach although they are not public, over plain http too; everything else must be a public https address (the SSRF guard).' },
    TANDEM_DELIVERY_MAX_ATTEMPTS: { type: 'integer', minimum: 1, maximum: 100, default: 15, description: 'Attempts before a webhook delivery becomes a dead letter (a permanent refusal, such as a 400, is one at once).' },
    TANDEM_DELIVERY_RETRY_MS: { type: 'integer', minimum: 1, default: 1000, description: 'Delay before the first retry of a webhook delivery; each next one doubles it, up to an hour, with jitter (1.5–3 hours over the 15 attempts by default).' },
    TANDEM_DELIVERY_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 10000, description: 'How long a destination has to answer one delivery.' },
    TANDEM_DELIVERY_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 1000, default: 8, description: 'Deliveries in flight per destination.' },
    TANDEM_CLV_REFRESH_HOURS: { type: 'number', minimum: 0, default: 24, description: 'How often each workspace\'s latest lifetime-value fit is redone on fresh data and every profile rescored; 0 turns it off.' },
  },
} as const;

export type Config = {
  port: number;
  host: string;
  dataDir: string;
  adminToken: string | undefined;
  writeKey: string | undefined;
  dedupeWindowMs: number;
  maxBodyBytes: number;
  maxPendingBytes: number;
  requestTimeoutMs: number;
  futureToleranceMs: number;
  minTimestampMs: number;
  logLevel: string;
  sync: 'full' | 'normal';
  clvRefreshMs: number;
  ingestThreads: number;
  columnsMaxProfiles: number;
  destinationAllowHosts: string;
  deliveryMaxAttempts: number;
  deliveryRetryMs: number;
  deliveryTimeoutMs: number;
  deliveryConcurrency: number;
};

type Raw = Record<string, string | number | undefined>;
type Env = {
  TANDEM_PORT: number; TANDEM_HOST: string; TANDEM_DATA_DIR: string; TANDEM_ADMIN_TOKEN?: string; TANDEM_WRITE_KEY?: string;
  TANDEM_DEDUPE_WINDOW_HOURS: number; TANDEM_MAX_BODY_BYTES: number; TANDEM_MAX_PENDING_BYTES: number; TANDEM_REQUEST_TIMEOUT_MS: number;
  TANDEM_FUTURE_TOLERANCE_HOURS: number; TANDEM_MIN_TIMESTAMP: string; TANDEM_LOG_LEVEL: string; TANDEM_SYNC: 'full' | 'normal'; TANDEM_CLV_REFRESH_HOURS: number; TANDEM_INGEST_THREADS?: number;
  TANDEM_COLUMNS_MAX_PROFILES: number; TANDEM_DESTINATION_ALLOW_HOSTS: string; TANDEM_DELIVERY_MAX_ATTEMPTS: number; TANDEM_DELIVERY_RETRY_MS: number; TANDEM_DELIVERY_TIMEOUT_MS: number;
  TANDEM_DELIVERY_CONCURRENCY: number;
};

/** Parses the environment (plus overrides such as CLI flags); throws naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined>, overrides: Record<string, string> = {}): Config {
  const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false });
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
  const raw: Raw = {};
  for (const key of Object.keys(CONFIG_SCHEMA.properties)) {
    const value = overrides[key] ?? env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const validate = ajv.compile(CONFIG_SCHEMA);
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath.slice(1) || 'config'} ${e.message}`);
    throw new Error(`Invalid configuration: ${problems.join('; ')}`);
  }
  const r = raw as unknown as Env;
  return {
    port: r.TANDEM_PORT,
    host: r.TANDEM_HOST,
    dataDir: r.TANDEM_DATA_DIR,
    adminToken: r.TANDEM_ADMIN_TOKEN,
    writeKey: r.TANDEM_WRITE_KEY,
    dedupeWindowMs: r.TANDEM_DEDUPE_WINDOW_HOURS * 3_600_000,
    maxBodyBytes: r.TANDEM_MAX_BODY_BYTES,
    maxPendingBytes: r.TANDEM_MAX_PENDING_BYTES,
    requestTimeoutMs: r.TANDEM_REQUEST_TIMEOUT_MS,
    futureToleranceMs: r.TANDEM_FUTURE_TOLERANCE_HOURS * 3_600_000,
    minTimestampMs: Date.parse(r.TANDEM_MIN_TIMESTAMP),
    logLevel: r.TANDEM_LOG_LEVEL,
    sync: r.TANDEM_SYNC,
    clvRefreshMs: r.TANDEM_CLV_REFRESH_HOURS * 3_600_000,
    // At least two: requests arrive in convoys (each commit answers several clients at once, who
    // send their next requests together), and one thread judges a convoy one request after another
    // while the writer waits on fsync; two judge it side by side (on 2 CPUs, measured on two
    // days: +12% at 8 connections; equal at 8 and +15% at 32).
    ingestThreads: r.TANDEM_INGEST_THREADS ?? Math.max(2, availableParallelism() - 1),
    columnsMaxProfiles: r.TANDEM_COLUMNS_MAX_PROFILES,
    destinationAllowHosts: r.TANDEM_DESTINATION_ALLOW_HOSTS,
    deliveryMaxAttempts: r.TANDEM_DELIVERY_MAX_ATTEMPTS,
    deliveryRetryMs: r.TANDEM_DELIVERY_RETRY_MS,
    deliveryTimeoutMs: r.TANDEM_DELIVERY_TIMEOUT_MS,
    deliveryConcurrency: r.TANDEM_DELIVERY_CONCURRENCY,
  };
}
