/**
 * npm run bench:audiences — building and previewing audiences over a big store.
 * Seeds BENCH_PROFILES (default 1,000,000) profiles and BENCH_EVENTS (default 10,000,000)
 * events straight into the data folder (log records of 100 events with their verdicts, compressed as ingest stores them, the
 * profiles, their user ids, a plan trait and every event's attribution with its name and
 * properties, as the profile stage keeps them), starts Tandem on it, then:
 * - backfill: creates an audience with a new event condition and times its background build
 *   (the history of its event, then every profile) through GET /api/v1/audiences/:key;
 * - preview: one right after the build (the stage has not loaded the columns the audience reads
 *   yet, so it reads rows), then, once /metrics shows them loaded, BENCH_PREVIEWS (default 10)
 *   previews of definitions over the same store, p50/p99.
 * Baselines in the same run: a bare scan of the same log (read each record, JSON.parse its
 * verdicts and body) and a bare read of what the preview reads (every live profile id and the
 * values of the keys it uses), both in this process without evaluation.
 * BENCH_SEED_CACHE=<folder>: the seeded store is kept there and copied from it on later runs
 * with the same sizes (seeding takes a minute or more).
 */
import { cpSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { decodeStored, storedEntry } from '../src/store/log-encoding.ts';
import { ADMIN_TOKEN, bootstrappedDataDir, percentile, spawnTandemOn, waitReady } from './lib/server.ts';

const PROFILES = Number(process.env.BENCH_PROFILES ?? 1_000_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000_000);
const PREVIEWS = Number(process.env.BENCH_PREVIEWS ?? 10);
const PER_RECORD = 100;
const RECORDS = Math.ceil(EVENTS / PER_RECORD);
const NOW = Date.now();
const DAY = 86_400_000;

// A first start creates the data folder, the workspace, its source and the owner token.
const dataDir = await bootstrappedDataDir('tandem-audiences-');

// Event i: customer (i * 7919) mod PROFILES; a hash of i makes 3 in 10 orders with a total of
// 0–199; spread over the last 400 days. A record holds 100 consecutive events, as a batch request would.
const SEED_CACHE = process.env.BENCH_SEED_CACHE && join(process.env.BENCH_SEED_CACHE, `${PROFILES}-${EVENTS}`);
const seedStarted = performance.now();
if (SEED_CACHE && existsSync(SEED_CACHE)) {
  // Nothing of the bootstrap may stay beside the copied databases (a stale -wal would apply to them).
  rmSync(dataDir, { recursive: true, force: true });
  cpSync(SEED_CACHE, dataDir, { recursive: true });
} else {
  const log = new DatabaseSync(join(dataDir, 'tandem.db'));
  const source = (log.prepare("SELECT id FROM sources WHERE workspace_id = 'default' LIMIT 1").get() as { id: string }).id;
  log.exec(`BEGIN;
    WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n < ${RECORDS - 1}),
    k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ${PER_RECORD - 1}),
    e AS (SELECT n, j, n * ${PER_RECORD} + j AS i FROM r CROSS JOIN k WHERE n * ${PER_RECORD} + j < ${EVENTS}),
    h AS (SELECT n, j, i, (i * 2654435761) % 4294967296 AS h FROM e),
    v AS (SELECT n, j, i, h, 'user-' || ((i * 7919) % ${PROFILES}) AS user_id, CASE WHEN (h / 1024) % 10 < 3 THEN 'Order Completed' ELSE 'Product Viewed' END AS event,
            ${NOW} - (i * 2654435761 % (400 * ${DAY})) AS ts FROM h)
    INSERT INTO log (id, workspace_id, source_id, received_at, kind, body, meta)
      SELECT n + 1, 'default', '${source}', ${NOW}, 'batch',
        CAST(json_object('batch', json_group_array(json_object('type', 'track', 'event', event, 'userId', user_id, 'messageId', 'm' || i,
          'timestamp', strftime('%Y-%m-%dT%H:%M:%fZ', ts / 1000.0, 'unixepoch'), 'properties', json_object('total', (h / 65536) % 200)))) AS BLOB),
        json_group_array(json_array('m' || i, 'track', 'a', ts, 0, user_id, 0, event))
      FROM (SELECT * FROM v ORDER BY n, j) GROUP BY n;
    COMMIT;`);
  // Bytes and verdicts stored as ingest stores them (log-encoding.ts).
  const pack = log.prepare('UPDATE log SET body = ?, encoding = ?, meta = ? WHERE id = ?');
  log.exec('BEGIN');
  for (const row of log.prepare('SELECT id, body, meta FROM log').iterate() as Iterable<{ id: number; body: Uint8Array; meta: string }>) {
    const stored = storedEntry(row.body, row.meta);
    pack.run(stored.body, stored.encoding, stored.meta, row.id);
  }
  log.exec('COMMIT');
  log.close();
  const state = new DatabaseSync(join(dataDir, 'state.db'));
  state.exec(`BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${PROFILES - 1})
    INSERT INTO profiles (id, workspace_id, created_at, updated_at) SELECT 'prof_' || i, 'default', ${NOW}, ${NOW} FROM n;
    INSERT INTO identifiers (workspace_id, type, value, profile_id, event_id, message_id, rule, created_at) SELECT 'default', 'user_id', 'user-' || substr(id, 6), id, '0.0', 'seed', 'seed', created_at FROM profiles;
    INSERT INTO traits (profile_id, key, value, ts, message_id) SELECT id, 'plan', CASE WHEN CAST(substr(id, 6) AS INTEGER) % 3 = 0 THEN '"pro"' ELSE '"free"' END, ${NOW}, 'seed' FROM profiles;
    DROP INDEX profile_events_event;
    WITH RECURSIVE e(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM e WHERE i < ${EVENTS - 1}),
    h AS (SELECT i, (i * 2654435761) % 4294967296 AS h FROM e)
    INSERT INTO profile_events (profile_id, ts, event_id, type, name, properties)
      SELECT 'prof_' || ((i * 7919) % ${PROFILES}), ${NOW} - (i * 2654435761 % (400 * ${DAY})), (i / ${PER_RECORD} + 1) || '.' || (i % ${PER_RECORD}),
        'track', CASE WHEN (h / 1024) % 10 < 3 THEN 'Order Completed' ELSE 'Product Viewed' END, json_object('total', (h / 65536) % 200) FROM h ORDER BY 1, 2, 3;
    CREATE INDEX profile_events_event ON profile_events (event_id);
    INSERT INTO checkpoint (name, log_id) VALUES ('profiles', ${RECORDS}) ON CONFLICT DO UPDATE SET log_id = excluded.log_id;
    COMMIT;`);
  state.close();
  if (SEED_CACHE) cpSync(dataDir, SEED_CACHE, { recursive: true });
}
const seedSeconds = (performance.now() - seedStarted) / 1000;

// Baselines: the least any backfill must do to read the log, and any preview to read its data.
const bare = new DatabaseSync(join(dataDir, 'tandem.db'), { readOnly: true });
let scanned = 0;
const scanStarted = performance.now();
for (const row of bare.prepare('SELECT body, encoding, meta FROM log ORDER BY id').iterate() as Iterable<{ body: Uint8Array; encoding: string | null; meta: string | Uint8Array }>) {
  const stored = decodeStored(row.body, row.encoding, row.meta);
  scanned += (JSON.parse(stored.meta) as unknown[]).length;
  JSON.parse(stored.body.toString('utf8'));
}
const scanSeconds = (performance.now() - scanStarted) / 1000;
bare.close();

const server = await spawnTandemOn(dataDir);
// The log writer loads the dedupe window (every message id of the last 24 h) before it commits.
const readyMs = await waitReady(server.url);
const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
  const json = (await res.json()) as Record<string, any>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

try {
  const text = 'traits.plan = "pro" and performed "Order Completed" at least 2 times in last 365 days where total > 100';
  const started = performance.now();
  await api('POST', '/api/v1/audiences', { key: 'big_spenders', text });
  let eventsDone = 0;
  let built: Record<string, any>;
  for (;;) {
    built = await api('GET', '/api/v1/audiences/big_spenders');
    if (!eventsDone && built.backfill.phase !== 'events') eventsDone = performance.now();
    if (built.backfill.status === 'done') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const total = (performance.now() - started) / 1000;
  const eventsSeconds = (eventsDone - started) / 1000;

  const definitions = [
    'traits.plan = "pro" and performed "Order Completed" at least 3 times in last 365 days where total > 100',
    'performed "Order Completed" at least 1 times in last 365 days where total > 100 or traits.plan = "free"',
    'not in audience "big_spenders" and traits.plan = "pro"',
  ];
  const preview = (text: string) => api('POST', '/api/v1/audiences/preview', { key: 'preview', text });
  // Right after the build the stage has not loaded the columns big_spenders reads yet: rows are read.
  let t = performance.now();
  await preview(definitions[0]!);
  const coldMs = performance.now() - t;
  // Then, idle, it loads them (plan, the event count, big_spenders' membership): the state previews meet from then on.
  t = performance.now();
  const kept = async () => Number(/^tandem_profile_columns_kept (\d+)/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
  while ((await kept()) < 3) await new Promise((r) => setTimeout(r, 50));
  const loadSeconds = (performance.now() - t) / 1000;

  const previews: number[] = [];
  const sizes = new Map<string, number>();
  for (let n = 0; n < PREVIEWS; n++) {
    const t = performance.now();
    const p = await preview(definitions[n % definitions.length]!);
    previews.push(performance.now() - t);
    sizes.set(definitions[n % definitions.length]!, p.size);
  }
  previews.sort((a, b) => a - b);

  const state = new DatabaseSync(join(dataDir, 'state.db'), { readOnly: true });
  const readStarted = performance.now();
  state.prepare("SELECT id FROM profiles WHERE workspace_id = 'default' AND merged_into IS NULL ORDER BY id").all();
  state.prepare("SELECT profile_id, value FROM traits WHERE key = 'plan'").all();
  state.prepare('SELECT profile_id, value FROM computed_values').all();
  const readMs = performance.now() - readStarted;
  state.close();

  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  console.log(`bench:audiences  ${n(PROFILES)} profiles, ${n(EVENTS)} events (seeded in ${seedSeconds.toFixed(1)} s), Node ${process.version}`);
  console.log(`  start-up: ready ${(readyMs / 1000).toFixed(1)} s after listening (the log writer loads ${n(EVENTS)} message ids of the dedupe window)`);
  console.log(`  backfill "${text}"`);
  console.log(`    history       ${eventsSeconds.toFixed(1)} s  ${n(EVENTS / eventsSeconds)} events/s (its events, from the profiles' stored events)`);
  console.log(`    all profiles  ${(total - eventsSeconds).toFixed(1)} s  ${n(PROFILES / (total - eventsSeconds))} profiles/s  (size ${n(built.size)}, ${n(built.backfill.entered)} entered)`);
  console.log(`    total         ${total.toFixed(1)} s`);
  console.log(`    bare log scan ${scanSeconds.toFixed(1)} s  ${n(scanned / scanSeconds)} events/s (read + JSON.parse of the log, no work) → ratio ${(scanSeconds / eventsSeconds).toFixed(2)}`);
  console.log(`  first preview right after the build, reading rows: ${coldMs.toFixed(0)} ms; columns audiences read loaded in memory ${loadSeconds.toFixed(1)} s later`);
  console.log(`  preview (${PREVIEWS} runs over ${definitions.length} definitions, from the columns; sizes ${[...sizes.values()].map(n).join(', ')})`);
  console.log(`    p50 ${percentile(previews, 50).toFixed(0)} ms  p99 ${percentile(previews, 99).toFixed(0)} ms  max ${percentile(previews, 100).toFixed(0)} ms; target p99 < 1000 ms: ${percentile(previews, 99) < 1000 ? 'met' : 'NOT met'}`);
  console.log(`    bare read of the same data ${readMs.toFixed(0)} ms → ratio ${(readMs / percentile(previews, 50)).toFixed(2)}`);
} finally {
  await server.stop();
}
