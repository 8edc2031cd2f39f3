/**
 * npm run bench:ingest — ingest throughput against a bare-parse baseline, in one run.
 *
 * For each shape (batches of 100 events, single /v1/track calls) it runs, in alternation,
 * (a) bench/bare-server.ts: a bare Fastify route that parses the same JSON and answers 200,
 * (b) Tandem (`tandem start`, embedded SQLite, TANDEM_SYNC=full: every 200 is fsynced),
 * each in its own process, loaded by autocannon from this one. Prints events/s, the ratio
 * and ack latency at 8, 16, 32 and 64 concurrent connections, then each server's capacity: its
 * best rate at any of them, and their ratio. The bare route is one thread that answers at once,
 * so it reaches its capacity with the fewest connections; Tandem's requests wait for an fsync
 * that those arriving together share (group commit), so it needs more in flight to reach its
 * own (an ingest endpoint serving many clients has plenty). BENCH_SECONDS (default 10),
 * BENCH_ROUNDS (default 2), BENCH_CONNECTIONS (comma-separated, default 8,16,32,64).
 */
import { fileURLToPath } from 'node:url';
import { bodyBytes } from './events.ts';
import { best, formatLoad, loadIngest, type LoadResult } from './lib/load.ts';
import { spawnServer, WRITE_KEY } from './lib/server.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '8,16,32,64').split(',').map(Number);
const root = (p: string) => fileURLToPath(new URL(p, import.meta.url));

type Result = LoadResult & { lag?: number };
const load = (url: string, path: string, events: number, connections: number) => loadIngest(url, path, events, WRITE_KEY, { seconds: SECONDS, connections });
const fmt = formatLoad;
/** How many log records the profile stage has yet to apply, from Tandem's own metric. */
const stageLag = async (url: string) => Number(/^tandem_profile_stage_lag_records (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);

/** BENCH_SHAPES: `batch`, `single` or both (default), comma-separated. */
const SHAPES = (process.env.BENCH_SHAPES ?? 'batch,single').split(',');
const shapes = [
  { key: 'batch', name: 'batch of 100 events (~40 KB) on /v1/batch', path: '/v1/batch', events: 100 },
  { key: 'single', name: 'single event on /v1/track', path: '/v1/track', events: 1 },
].filter((s) => SHAPES.includes(s.key));

console.log(`bench:ingest  ${SECONDS}s x ${ROUNDS} rounds, ${CONNECTIONS.join(', ')} connections, Node ${process.version}, batch body ${bodyBytes(100)().length} bytes`);
/** A server's best rate, and at how many connections. */
type Capacity = { result: Result; connections: number };
const better = (c: Capacity | undefined, result: Result, connections: number): Capacity => (c && c.result.eventsPerSec >= result.eventsPerSec ? c : { result, connections });

for (const shape of shapes) {
  let bareCapacity: Capacity | undefined;
  let tandemCapacity: Capacity | undefined;
  for (const connections of CONNECTIONS) {
    const bare: Result[] = [];
    const tandem: Result[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const b = await spawnServer(root('./bare-server.ts'), []);
      bare.push(await load(b.url, shape.path, shape.events, connections));
      await b.stop();
      const t = await spawnServer(undefined, undefined, { TANDEM_SYNC: 'full' });
      const r: Result = await load(t.url, shape.path, shape.events, connections);
      r.lag = await stageLag(t.url);
      tandem.push(r);
      await t.stop();
    }
    const b = best(bare);
    const t = best(tandem) as Result;
    console.log(`\n${shape.name}, ${connections} connections`);
    console.log(`  bare parse  ${fmt(b)}`);
    console.log(`  tandem      ${fmt(t)}`);
    console.log(`  ratio       ${(t.eventsPerSec / b.eventsPerSec).toFixed(2)} of bare (best of ${ROUNDS} rounds each)`);
    console.log(`  profile stage ${t.lag} records behind when the load stopped (it gives way while ingest is saturated, then catches up)`);
    bareCapacity = better(bareCapacity, b, connections);
    tandemCapacity = better(tandemCapacity, t, connections);
  }
  if (bareCapacity && tandemCapacity) {
    console.log(`\n${shape.name}, capacity (each server's best rate at any of ${CONNECTIONS.join(', ')} connections)`);
    console.log(`  bare parse  ${fmt(bareCapacity.result)}  at ${bareCapacity.connections}`);
    console.log(`  tandem      ${fmt(tandemCapacity.result)}  at ${tandemCapacity.connections}`);
    console.log(`  ratio       ${(tandemCapacity.result.eventsPerSec / bareCapacity.result.eventsPerSec).toFixed(2)} of bare`);
  }
}
