/**
 * npm run bench:profile-api — GET /traits by user_id with BENCH_PROFILES (default 1,000,000)
 * profiles in the store (5 traits each, seeded straight into state.db), random profile per
 * request, against a bare Fastify route that answers a JSON body of the same size, in the same
 * run. BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 8).
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ADMIN_TOKEN, basic, bootstrappedDataDir, spawnServer, spawnTandemOn } from './lib/server.ts';

const PROFILES = Number(process.env.BENCH_PROFILES ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);

// First start creates the data folder, the workspace and the owner token; then seed profiles.
// A first start creates the data folder, the workspace, its source and the owner token.
const dataDir = await bootstrappedDataDir('tandem-profile-api-');
const seedStarted = performance.now();
{
  const db = new DatabaseSync(join(dataDir, 'state.db'));
  db.exec(`BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${PROFILES - 1})
    INSERT INTO profiles (id, workspace_id, created_at, updated_at) SELECT 'prof_' || i, 'default', 1780000000000, 1780000000000 FROM n;
    INSERT INTO identifiers (workspace_id, type, value, profile_id, event_id, message_id, rule, created_at) SELECT 'default', 'user_id', 'user-' || substr(id, 6), id, '0.0', 'seed', 'seed', created_at FROM profiles;
    INSERT INTO traits (profile_id, key, value, ts, message_id)
      SELECT p.id, k.key, CASE k.key WHEN 'email' THEN json_quote('user' || substr(p.id, 6) || '@example.com') WHEN 'plan' THEN '"pro"' WHEN 'seats' THEN '12' WHEN 'name' THEN '"Ada Lovelace"' ELSE '"DE"' END, 1780000000000, 'seed'
      FROM profiles p CROSS JOIN (SELECT 'email' AS key UNION ALL SELECT 'plan' UNION ALL SELECT 'seats' UNION ALL SELECT 'name' UNION ALL SELECT 'country') k;
    COMMIT;`);
  db.close();
}
const seedSeconds = (performance.now() - seedStarted) / 1000;

type Result = { rps: number; p50: number; p99: number; non2xx: number };
async function load(url: string): Promise<Result> {
  const run = (duration: number) =>
    autocannon({
      url,
      connections: CONNECTIONS,
      duration,
      headers: { authorization: basic(ADMIN_TOKEN) },
      requests: [{ setupRequest: (req) => ({ ...req, path: `/v1/spaces/default/collections/users/profiles/user_id:user-${Math.floor(Math.random() * PROFILES)}/traits` }) }],
    });
  await run(2);
  const r = await run(SECONDS);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
}

const tandem = await spawnTandemOn(dataDir);
const sample = await (await fetch(`${tandem.url}/v1/spaces/default/collections/users/profiles/user_id:user-7/traits`, { headers: { authorization: basic(ADMIN_TOKEN) } })).text();
const t = await load(tandem.url);
await tandem.stop();
const bare = await spawnServer(fileURLToPath(new URL('./bare-json-server.ts', import.meta.url)), [sample]);
const b = await load(bare.url);
await bare.stop();

const fmt = (r: Result) => `${Math.round(r.rps).toLocaleString('en-US').padStart(7)} req/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms${r.non2xx ? `  (${r.non2xx} non-2xx!)` : ''}`;
console.log(`bench:profile-api  ${PROFILES.toLocaleString('en-US')} profiles (seeded in ${seedSeconds.toFixed(1)} s), ${SECONDS}s, ${CONNECTIONS} connections, body ${sample.length} bytes, Node ${process.version}`);
console.log(`  bare JSON route  ${fmt(b)}`);
console.log(`  tandem /traits   ${fmt(t)}`);
console.log(`  ratio            ${(t.rps / b.rps).toFixed(2)} of bare; target ≥ 0.50 and p99 < 5 ms`);
