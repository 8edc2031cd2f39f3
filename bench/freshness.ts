/**
 * npm run bench:freshness — from an event's 200 to the moment the Profile API shows its effect,
 * while ingest runs at a steady 1,000 events/s, with BENCH_AUDIENCES live audiences (default 0;
 * issue 4's figure is with 50).
 * Probes: identify calls that set a trait to a new value and flip the probe user in or out of an
 * audience; after each 200 the Profile API is polled until it shows the trait, then until it
 * shows the membership. Baseline in the same run: the same Profile API read when the value is
 * already there. BENCH_SECONDS (default 20), BENCH_RATE (events/s, default 1000).
 */
import { ADMIN_TOKEN, basic, percentile, spawnServer, WRITE_KEY } from './lib/server.ts';
import { realisticEvent } from './events.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const AUDIENCES = Number(process.env.BENCH_AUDIENCES ?? 0);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const server = await spawnServer();
// A failed run must not leave the server running.
const fail = (err: unknown) => {
  console.error(err);
  void server.stop().finally(() => process.exit(1));
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
const ingest = (path: string, body: unknown) => fetch(`${server.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' } });
const traits = (user: string) => fetch(`${server.url}/v1/spaces/default/collections/users/profiles/user_id:${user}/traits?include=seq`, { headers: { authorization: basic(ADMIN_TOKEN) } }).then(async (r) => (r.ok ? ((await r.json()) as { traits: { seq?: number } }) : { traits: {} }));

// Live audiences: one the probes flip, the rest on what the load changes (traits and events).
const admin = (body: unknown) => fetch(`${server.url}/api/v1/audiences`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } });
const fillers = [
  (i: number) => `traits.plan = "pro" and performed "Order Completed" at least ${1 + (i % 3)} times in last ${7 + i} days where price > ${20 + i}`,
  (i: number) => `performed "Product Viewed" at least ${1 + (i % 5)} times in last ${1 + (i % 30)} days and not performed "Order Completed" in last 30 days`,
  (i: number) => `traits.seq > ${i * 10} or traits.country in ["DE", "FR"]`,
];
if (AUDIENCES > 0) {
  const probe = await admin({ key: 'probe_gold', text: 'traits.tier = "gold"' });
  if (probe.status !== 201) throw new Error(`audience: ${probe.status} ${await probe.text()}`);
  for (let i = 1; i < AUDIENCES; i++) {
    const res = await admin({ key: `filler_${i}`, text: fillers[i % fillers.length]!(i) });
    if (res.status !== 201) throw new Error(`audience: ${res.status} ${await res.text()}`);
  }
}
const audiences = (user: string) => fetch(`${server.url}/v1/spaces/default/collections/users/profiles/user_id:${user}/traits?class=audience&include=probe_gold`, { headers: { authorization: basic(ADMIN_TOKEN) } }).then(async (r) => (r.ok ? ((await r.json()) as { traits: Record<string, boolean> }) : { traits: {} }));

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

// How far the profile stage is behind the log, sampled twice a second.
const lags: number[] = [];
const lagSampler = setInterval(() => {
  void fetch(`${server.url}/metrics`).then(async (r) => {
    const m = /tandem_profile_stage_lag_records (\d+)/.exec(await r.text());
    if (m) lags.push(Number(m[1]));
  }, () => {});
}, 500);

const fresh: number[] = [];
const membership: number[] = [];
const reads: number[] = [];
await new Promise((r) => setTimeout(r, 1000));
const until = performance.now() + SECONDS * 1000;
for (let n = 1; performance.now() < until; n++) {
  const user = `probe-${n % 20}`;
  // Each probe user alternates between gold and silver on successive visits: in, out, in …
  const gold = Math.floor(n / 20) % 2 === 0;
  const res = await ingest('/v1/identify', { userId: user, traits: { seq: n, tier: gold ? 'gold' : 'silver' }, messageId: `probe-${n}` });
  const acked = performance.now();
  if (!res.ok) throw new Error(`probe answered ${res.status}`);
  let polls = 0;
  // Poll every millisecond: enough resolution, without the poller itself starving the server.
  const tick = () => new Promise((r) => setTimeout(r, 1));
  while ((await traits(user)).traits.seq !== n) {
    if (++polls > 10_000) throw new Error('probe never became visible');
    await tick();
  }
  fresh.push(performance.now() - acked);
  if (AUDIENCES > 0) {
    while (((await audiences(user)).traits.probe_gold === true) !== gold) {
      if (++polls > 20_000) throw new Error(`membership never became visible; stage lag samples: ${lags.join(' ')}`);
      await tick();
    }
    membership.push(performance.now() - acked);
  }
  const t = performance.now();
  await traits(user);
  reads.push(performance.now() - t);
  await new Promise((r) => setTimeout(r, 20));
}
stop = true;
clearInterval(lagSampler);
await load;
await Promise.all(inflight);
const loadSeconds = (performance.now() - loadStarted) / 1000;
await server.stop();

fresh.sort((a, b) => a - b);
membership.sort((a, b) => a - b);
reads.sort((a, b) => a - b);
const f = (xs: number[], p: number) => percentile(xs, p).toFixed(1).padStart(6);
console.log(`bench:freshness  ${SECONDS}s at ${RATE} events/s (${Math.round(sent / loadSeconds)} acknowledged/s, ${failed} failed requests), ${AUDIENCES} live audiences, ${fresh.length} probes, Node ${process.version}`);
console.log(`  200 → trait visible in Profile API        p50 ${f(fresh, 50)} ms  p99 ${f(fresh, 99)} ms  max ${f(fresh, 100)} ms`);
if (AUDIENCES > 0) console.log(`  200 → membership visible (class=audience) p50 ${f(membership, 50)} ms  p99 ${f(membership, 99)} ms  max ${f(membership, 100)} ms`);
console.log(`  profile stage behind the log: max ${Math.max(0, ...lags)} records, last ${lags.at(-1) ?? 0} (sampled every 0.5 s; one record is one request)`);
console.log(`  Profile API read (baseline)               p50 ${f(reads, 50)} ms  p99 ${f(reads, 99)} ms  max ${f(reads, 100)} ms`);
console.log(`  target p99 < 50 ms (goal 10 ms): traits ${percentile(fresh, 99) < 50 ? 'met' : 'NOT met'}${AUDIENCES > 0 ? `, audiences ${percentile(membership, 99) < 50 ? 'met' : 'NOT met'}` : ''}`);
