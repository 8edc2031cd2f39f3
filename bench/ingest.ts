/**
 * npm run bench:ingest — ingest throughput against a bare-parse baseline, in one run.
 *
 * For each shape (batches of 100 events, single /v1/track calls) it runs, in alternation,
 * (a) bench/bare-server.ts: a bare Fastify route that parses the same JSON and answers 200,
 * (b) Tandem (`tandem start`, embedded SQLite, TANDEM_SYNC=full: every 200 is fsynced),
 * each in its own process, loaded by autocannon from this one. Prints events/s, the ratio
 * and ack latency. BENCH_SECONDS (default 10), BENCH_ROUNDS (default 2), BENCH_CONNECTIONS (8).
 */
import { fileURLToPath } from 'node:url';
import { bodyTemplate } from './events.ts';
import { best, formatLoad, loadIngest, type LoadResult } from './lib/load.ts';
import { spawnServer, WRITE_KEY } from './lib/server.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const root = (p: string) => fileURLToPath(new URL(p, import.meta.url));

type Result = LoadResult;
const load = (url: string, path: string, events: number) => loadIngest(url, path, events, WRITE_KEY, { seconds: SECONDS, connections: CONNECTIONS });
const fmt = formatLoad;

const shapes = [
  { name: 'batch of 100 events (~35 KB) on /v1/batch', path: '/v1/batch', events: 100 },
  { name: 'single event on /v1/track', path: '/v1/track', events: 1 },
];

console.log(`bench:ingest  ${SECONDS}s x ${ROUNDS} rounds, ${CONNECTIONS} connections, Node ${process.version}, batch body ${bodyTemplate(100)('x').length} bytes`);
for (const shape of shapes) {
  const bare: Result[] = [];
  const tandem: Result[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const b = await spawnServer(root('./bare-server.ts'), []);
    bare.push(await load(b.url, shape.path, shape.events));
    await b.stop();
    const t = await spawnServer(undefined, undefined, { TANDEM_SYNC: 'full' });
    tandem.push(await load(t.url, shape.path, shape.events));
    await t.stop();
  }
  const b = best(bare);
  const t = best(tandem);
  console.log(`\n${shape.name}`);
  console.log(`  bare parse  ${fmt(b)}`);
  console.log(`  tandem      ${fmt(t)}`);
  console.log(`  ratio       ${(t.eventsPerSec / b.eventsPerSec).toFixed(2)} of bare (best of ${ROUNDS} rounds each)`);
}
