import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { bootstrap } from '../src/access/admin.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createMetrics } from '../src/ops/metrics.ts';
import type { EventLog, Stores } from '../src/store/ports.ts';
import { openSqliteStores } from '../src/store/sqlite/index.ts';
import { ADMIN_TOKEN, basic, tempDir, trackEvent, WRITE_KEY } from './helpers.ts';

/** An app whose event log is replaced by `override`, with its logs captured. */
async function appWithLog(t: TestContext, override: Partial<EventLog>) {
  const dataDir = tempDir(t);
  const real = openSqliteStores({ dataDir, sync: 'full' });
  const base = real.log;
  const log: EventLog = {
    append: (entry) => (override.append ?? ((e) => base.append(e)))(entry),
    pendingBytes: () => (override.pendingBytes ?? (() => base.pendingBytes()))(),
    readBackward: (w, b, l) => base.readBackward(w, b, l),
    readForward: (a, l) => base.readForward(a, l),
    readVerdictsForward: (a, l) => base.readVerdictsForward(a, l),
    get: (w, id) => base.get(w, id),
    lastId: () => base.lastId(),
    close: () => base.close(),
  };
  const stores: Stores = { ...real, log, stage: undefined, ready: () => { throw new Error('disk I/O error'); } };
  bootstrap(real.access, { writeKey: WRITE_KEY, adminToken: ADMIN_TOKEN });
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(chunk.toString()); done(); } });
  const app = await buildApp(loadConfig({ TANDEM_DATA_DIR: dataDir }), { stores, metrics: createMetrics(), logger: pino({ level: 'info' }, sink) });
  t.after(async () => { await app.close(); await real.close(); });
  const send = (body: unknown) => app.inject({ method: 'POST', url: '/v1/batch', payload: JSON.stringify(body), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' } });
  return { app, lines, send, stores: real };
}

test('disk full or an I/O error in the store: 503 with a code, never 200, and the retry is not taken for a duplicate', async (t) => {
  let failing = true;
  let real: EventLog['append'] = () => Promise.reject(new Error('unset'));
  const { app, lines, send, stores } = await appWithLog(t, {
    append: (entry) => (failing ? Promise.reject(Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'ERR_SQLITE_ERROR' })) : real(entry)),
  });
  real = (entry) => stores.log.append(entry);
  const event = trackEvent({ userId: 'person@example.com' });
  const res = await send({ batch: [event] });
  assert.equal(res.statusCode, 503);
  assert.deepEqual(res.json(), { success: false, error: { code: 'unavailable', message: 'The store is unavailable; nothing was acknowledged.' } });
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
  failing = false;
  assert.equal((await send({ batch: [event] })).statusCode, 200, 'the retry after a failure is accepted, not deduplicated away');
  const log = lines.join('');
  assert.match(log, /request failed/);
  assert.doesNotMatch(log, /person@example\.com|wk_test|tdm_test/, 'logs carry no identifiers or secrets');
});

test('when too much waits for commit, ingest answers 429 with Retry-After', async (t) => {
  const { send } = await appWithLog(t, { pendingBytes: () => 1e12 });
  const res = await send({ batch: [trackEvent()] });
  assert.equal(res.statusCode, 429);
  assert.equal(res.headers['retry-after'], '1');
  assert.equal(res.json().error.code, 'rate_limited');
});
