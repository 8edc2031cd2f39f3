import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { TestContext } from 'node:test';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { loadConfig, type Config } from '../src/config.ts';
import { openTandem, type Tandem } from '../src/runtime.ts';

export const WRITE_KEY = 'wk_test_write_key_0001';
export const ADMIN_TOKEN = 'tdm_test_admin_token_000000001';

export type TestApp = Tandem & {
  dataDir: string;
  config: Config;
  inject: (opts: InjectOptions) => Promise<LightMyRequestResponse>;
  /** POSTs JSON to an ingest path with the test write key as HTTP Basic. */
  send: (path: string, body: unknown, headers?: Record<string, string>) => Promise<LightMyRequestResponse>;
  events: (query?: string) => Promise<Array<Record<string, any>>>;
};

export function tempDir(t: TestContext, keep = false): string {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-test-'));
  if (!keep) t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const basic = (key: string): string => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
export const bearer = (token = ADMIN_TOKEN): string => `Bearer ${token}`;
export const gzip = (value: unknown): Buffer => gzipSync(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));

/** Opens Tandem on a fresh (or the given) data folder, closed when the test ends. */
export async function openTestApp(t: TestContext, options: { dataDir?: string; env?: Record<string, string>; now?: () => number } = {}): Promise<TestApp> {
  const dataDir = options.dataDir ?? tempDir(t);
  const config = loadConfig({ TANDEM_DATA_DIR: dataDir, TANDEM_WRITE_KEY: WRITE_KEY, TANDEM_ADMIN_TOKEN: ADMIN_TOKEN, TANDEM_LOG_LEVEL: 'silent', ...options.env });
  const tandem = await openTandem(config, { logger: pino({ level: 'silent' }), ...(options.now ? { now: options.now } : {}) });
  t.after(() => tandem.close());
  const app: FastifyInstance = tandem.app;
  const inject = (opts: InjectOptions) => app.inject(opts);
  return {
    ...tandem,
    dataDir,
    config,
    inject,
    send: (path, body, headers = {}) =>
      inject({ method: 'POST', url: path, payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json', ...headers } }),
    events: async (query = '') => {
      const res = await inject({ method: 'GET', url: `/api/v1/events?limit=500${query ? `&${query}` : ''}`, headers: { authorization: bearer() } });
      if (res.statusCode !== 200) throw new Error(`events API answered ${res.statusCode}: ${res.body}`);
      return res.json().data;
    },
  };
}

let counter = 0;
export const mid = (prefix = 'm'): string => `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

export function trackEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'track', event: 'Order Completed', userId: 'user-1', messageId: mid(), properties: { total: 42.5, currency: 'EUR' }, ...overrides };
}
