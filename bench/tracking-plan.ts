/**
 * npm run bench:tracking-plan — ingest with a 200-event tracking plan in `flag` mode against no
 * plan, in the same run and the same server: one source enforces the plan, the other has none,
 * loaded in alternation (the order flips each round) with batches of 100 realistic events (which keep the plan, as most
 * traffic does). Target: at most 10% slower. BENCH_SECONDS (default 10), BENCH_ROUNDS (default 3).
 */
import { best, formatLoad, loadIngest, type LoadResult } from './lib/load.ts';
import { ADMIN_TOKEN, spawnServer, WRITE_KEY } from './lib/server.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const server = await spawnServer(undefined, undefined, { TANDEM_SYNC: 'full' });
const admin = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, any>;
};

try {
  // The two events the load sends, as a careful team would plan them, and 198 more.
  const properties = { product_id: { type: 'string' }, name: { type: 'string' }, price: { type: 'number', minimum: 0 }, currency: { type: 'string', minLength: 3, maxLength: 3 }, quantity: { type: 'integer', minimum: 1 } };
  const events: Record<string, unknown> = {
    'Order Completed': { type: 'object', properties, required: ['product_id', 'price', 'currency'] },
    'Product Viewed': { type: 'object', properties, required: ['product_id'] },
  };
  for (let i = 0; Object.keys(events).length < 200; i++) events[`Planned Event ${i}`] = { type: 'object', properties: { id: { type: 'string' }, value: { type: 'number' } }, required: ['id'] };
  await admin('PUT', '/api/v1/tracking-plans/web', { definition: { events, unplannedEvents: 'violation', unplannedProperties: 'violation' } });
  const planned = await admin('POST', '/api/v1/write-keys', { source: 'planned' });
  const sources = (await admin('GET', '/api/v1/sources')).data as Array<{ id: string; name: string }>;
  await admin('PUT', `/api/v1/sources/${sources.find((s) => s.name === 'planned')!.id}/plan`, { plan: 'web', enforcement: 'flag' });
  const none: LoadResult[] = [];
  const plan: LoadResult[] = [];
  // Alternating which goes first: the profile stage works through what each run left behind.
  for (let round = 0; round < ROUNDS; round++) {
    const runs = [() => loadIngest(server.url, '/v1/batch', 100, WRITE_KEY, { seconds: SECONDS }).then((r) => none.push(r)), () => loadIngest(server.url, '/v1/batch', 100, planned.key as string, { seconds: SECONDS }).then((r) => plan.push(r))];
    for (const run of round % 2 === 0 ? runs : runs.reverse()) await run();
  }
  const flagged = (await admin('GET', '/api/v1/violations?hours=1')).data as Array<{ count: number }>;
  if (flagged.length > 0) throw new Error(`the load should keep the plan: ${JSON.stringify(flagged[0])}`);
  const [n, p] = [best(none), best(plan)];
  console.log(`bench:tracking-plan  ${SECONDS}s x ${ROUNDS} rounds, batches of 100 events, plan of ${Object.keys(events).length} events in flag mode, Node ${process.version}`);
  console.log(`  no plan     ${formatLoad(n)}`);
  console.log(`  flag plan   ${formatLoad(p)}`);
  console.log(`  ratio       ${(p.eventsPerSec / n.eventsPerSec).toFixed(3)} (target ≥ 0.90: ${p.eventsPerSec >= 0.9 * n.eventsPerSec ? 'met' : 'NOT met'})`);
} finally {
  await server.stop();
}
