/**
 * npm run bench:activation — audiences out to a webhook.
 *
 * Tandem in its own process with BENCH_PROFILES profiles (default 20,000) in an audience; a
 * webhook receiver in this process answers 200. (1) Throughput: an activation with its first
 * sync, every member an entry, timed from the POST to the last delivery arriving. Baseline in
 * the same run: this process posting as many bodies of the same size to the same receiver with
 * the same concurrency and keep-alive, nothing else (no queue, no signing, no consent, no
 * reads). (2) Latency: BENCH_PROBES identify calls (default 200) that move a profile into the
 * audience, timed from the 200 to the webhook's arrival. (3) The same for track calls forwarded
 * by an event stream.
 */
import { createServer } from 'node:http';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ADMIN_TOKEN, basic, percentile, spawnServer, WRITE_KEY } from './lib/server.ts';

const PROFILES = Number(process.env.BENCH_PROFILES ?? 20_000);
const PROBES = Number(process.env.BENCH_PROBES ?? 200);
const CONCURRENCY = 8;

// The receiver: counts deliveries and notes when each probe's entry arrives.
let received = 0;
let lastBody = '';
const arrived = new Map<string, number>();
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received++;
    lastBody = Buffer.concat(chunks).toString();
    const user = /"user_id":\["(probe-[^"]+)"\]/.exec(lastBody)?.[1] ?? /"messageId":"(event-probe-[^"]+)"/.exec(lastBody)?.[1];
    if (user) arrived.set(user, performance.now());
    res.writeHead(200).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

const server = await spawnServer(undefined, undefined, { TANDEM_DESTINATION_ALLOW_HOSTS: '127.0.0.1', TANDEM_DELIVERY_CONCURRENCY: String(CONCURRENCY) });
const fail = (err: unknown) => {
  console.error(err);
  void server.stop().finally(() => process.exit(1));
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
const admin = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Record<string, any>;
};
const ingest = async (body: unknown) => {
  const res = await fetch(`${server.url}/v1/batch`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' } });
  if (!res.ok) throw new Error(`ingest: ${res.status}`);
};

// Profiles in the audience, with a few traits and consent.
for (let i = 0; i < PROFILES; i += 500) {
  const batch = Array.from({ length: Math.min(500, PROFILES - i) }, (_, j) => ({
    type: 'identify', userId: `user-${i + j}`, messageId: `seed-${i + j}`,
    traits: { plan: 'pro', country: ['DE', 'FR', 'US'][(i + j) % 3], seats: (i + j) % 50 },
    context: { consent: { categoryPreferences: { Advertising: true } } },
  }));
  await ingest({ batch });
}
await admin('POST', '/api/v1/audiences', { key: 'pros', text: 'traits.plan = "pro"' });
while ((await admin('GET', '/api/v1/audiences/pros')).backfill?.status !== 'done') await new Promise((r) => setTimeout(r, 100));
const destination = await admin('POST', '/api/v1/destinations', { name: 'bench', url: hook, purposes: ['Advertising'] });

// (1) Tandem: the first sync of the activation.
const started = performance.now();
await admin('POST', '/api/v1/activations', { destination: destination.id, audience: 'pros', traits: ['plan', 'country', 'seats'] });
while (received < PROFILES) await new Promise((r) => setTimeout(r, 20));
const tandemSeconds = (performance.now() - started) / 1000;
const counts = (await admin('GET', `/api/v1/destinations/${destination.id}`)).deliveries;

// Baseline: the same number of bodies of the same size, posted straight from here.
const body = lastBody;
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const post = () =>
  new Promise<void>((resolve, reject) => {
    const req = request(hook, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(body);
  });
received = 0;
const bareStarted = performance.now();
let next = 0;
await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
  while (next++ < PROFILES) await post();
}));
const bareSeconds = (performance.now() - bareStarted) / 1000;
agent.destroy();

// (2) Latency: a profile enters the audience; from the 200 to the webhook.
await admin('POST', '/api/v1/audiences', { key: 'probes', text: 'traits.probe = true' });
while ((await admin('GET', '/api/v1/audiences/probes')).backfill?.status !== 'done') await new Promise((r) => setTimeout(r, 100));
await admin('POST', '/api/v1/activations', { destination: destination.id, audience: 'probes', sync: 'changes' });
const latencies: number[] = [];
for (let i = 0; i < PROBES; i++) {
  const user = `probe-${i}`;
  await ingest({ batch: [{ type: 'identify', userId: user, messageId: `probe-${i}`, traits: { probe: true }, context: { consent: { categoryPreferences: { Advertising: true } } } }] });
  const acked = performance.now();
  while (!arrived.has(user)) await new Promise((r) => setImmediate(r));
  latencies.push(arrived.get(user)! - acked);
}
latencies.sort((a, b) => a - b);

// (3) Events: a stream of one track event name; from the 200 to the webhook.
await admin('POST', '/api/v1/event-streams', { destination: destination.id, types: ['track'], events: ['Probe'] });
const eventLatencies: number[] = [];
for (let i = 0; i < PROBES; i++) {
  const id = `event-probe-${i}`;
  await ingest({ batch: [{ type: 'track', userId: `user-${i}`, event: 'Probe', messageId: id, properties: { i } }] });
  const acked = performance.now();
  while (!arrived.has(id)) await new Promise((r) => setImmediate(r));
  eventLatencies.push(arrived.get(id)! - acked);
}
eventLatencies.sort((a, b) => a - b);

const rate = (n: number, s: number) => Math.round(n / s).toLocaleString('en-US');
console.log(`bench:activation  ${PROFILES.toLocaleString('en-US')} profiles, ${CONCURRENCY} in flight, body ${Buffer.byteLength(body)} bytes, Node ${process.version}`);
console.log(`  bare POST loop      ${rate(PROFILES, bareSeconds).padStart(8)} deliveries/s  (${bareSeconds.toFixed(2)} s)`);
console.log(`  tandem first sync   ${rate(PROFILES, tandemSeconds).padStart(8)} deliveries/s  (${tandemSeconds.toFixed(2)} s; ${JSON.stringify(counts)})`);
console.log(`  ratio               ${(bareSeconds / tandemSeconds).toFixed(2)} of the bare loop`);
console.log(`  200 → webhook       p50 ${percentile(latencies, 50).toFixed(1)} ms  p99 ${percentile(latencies, 99).toFixed(1)} ms  max ${latencies.at(-1)!.toFixed(1)} ms  (${PROBES} entries)`);
console.log(`  200 → webhook       p50 ${percentile(eventLatencies, 50).toFixed(1)} ms  p99 ${percentile(eventLatencies, 99).toFixed(1)} ms  max ${eventLatencies.at(-1)!.toFixed(1)} ms  (${PROBES} events of a stream)`);
await server.stop();
receiver.close();
