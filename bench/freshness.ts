/**
 * npm run bench:freshness — from an event's 200 to the moment the Profile API shows its effect,
 * while ingest runs at a steady 1,000 events/s. Probes: identify calls that set a trait to a new
 * value; after each 200 the Profile API is polled until it shows the value. Baseline in the same
 * run: the latency of the same Profile API read when the value is already there.
 * BENCH_SECONDS (default 20), BENCH_RATE (events/s, default 1000).
 */
import { ADMIN_TOKEN, basic, percentile, spawnServer, WRITE_KEY } from './lib/server.ts';
import { realisticEvent } from './events.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const server = await spawnServer();
const ingest = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' } });
const traits = (user: string) => fetch(`${server.url}/v1/spaces/default/collections/users/profiles/user_id:${user}/traits?include=seq`, { headers: { authorization: basic(ADMIN_TOKEN) } }).then(async (r) => (r.ok ? ((await r.json()) as { traits: { seq?: number } }) : { traits: {} }));

let stop = false;
let sent = 0;
let failed = 0;
const inflight = new Set<Promise<unknown>>();
const loadStarted = performance.now();
// Steady load: every 10 ms a batch of RATE/100 events for a pool of 10,000 customers.
const load = (async () => {
  const start = performance.now();
  for (let tick = 0; !stop; tick++) {
    const due = start + tick * 10;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const batch = Array.from({ length: RATE / 100 }, (_, i) => realisticEvent(tick * 1000 + i, `load-${tick}-${i}`));
    const request = ingest('/v1/batch', { batch }).then((r) => (r.ok ? (sent += batch.length) : failed++), () => failed++);
    inflight.add(request);
    void request.finally(() => inflight.delete(request));
  }
})();

const fresh: number[] = [];
const reads: number[] = [];
await new Promise((r) => setTimeout(r, 1000));
const until = performance.now() + SECONDS * 1000;
for (let n = 1; performance.now() < until; n++) {
  const user = `probe-${n % 20}`;
  const res = await ingest('/v1/identify', { userId: user, traits: { seq: n }, messageId: `probe-${n}` });
  const acked = performance.now();
  if (!res.ok) throw new Error(`probe answered ${res.status}`);
  let polls = 0;
  while ((await traits(user)).traits.seq !== n) if (++polls > 10_000) throw new Error('probe never became visible');
  fresh.push(performance.now() - acked);
  const t = performance.now();
  await traits(user);
  reads.push(performance.now() - t);
  await new Promise((r) => setTimeout(r, 20));
}
stop = true;
await load;
await Promise.all(inflight);
const loadSeconds = (performance.now() - loadStarted) / 1000;
await server.stop();

fresh.sort((a, b) => a - b);
reads.sort((a, b) => a - b);
const f = (xs: number[], p: number) => percentile(xs, p).toFixed(1).padStart(6);
console.log(`bench:freshness  ${SECONDS}s at ${RATE} events/s (${Math.round(sent / loadSeconds)} acknowledged/s, ${failed} failed requests), ${fresh.length} probes, Node ${process.version}`);
console.log(`  200 → visible in Profile API   p50 ${f(fresh, 50)} ms  p99 ${f(fresh, 99)} ms  max ${f(fresh, 100)} ms`);
console.log(`  Profile API read (baseline)    p50 ${f(reads, 50)} ms  p99 ${f(reads, 99)} ms  max ${f(reads, 100)} ms`);
console.log(`  target p99 < 50 ms (goal 10 ms): ${percentile(fresh, 99) < 50 ? 'met' : 'NOT met'}`);
