/**
 * npm run bench:identity — events/s through identity resolution and profile updates (the real
 * profile stage on a real state.db, fed from an in-memory log in records of 100 events, as
 * ingest writes them), on synthetic customers with known ground truth, checked afterwards.
 * Baseline in the same run: the same events through the merge policy on an in-memory graph
 * (no storage), so the ratio shows what durable state costs. BENCH_EVENTS (default 1,000,000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractIdentifiers, type Identifier } from '../src/identity/identifiers.ts';
import { DEFAULT_RULES, planEvent, type GraphView } from '../src/identity/merge-policy.ts';
import { judgeEvent } from '../src/ingest/normalize.ts';
import { createProfileStage } from '../src/profiles/stage.ts';
import { encodeMeta } from '../src/store/event-meta.ts';
import type { LogRecord } from '../src/store/ports.ts';
import { openDatabase, STATE_DB, STATE_MIGRATIONS } from '../src/store/sqlite/database.ts';
import { SqliteProfileStore } from '../src/store/sqlite/profile-store.ts';
import { generateCustomers, interleave } from './data/customers.ts';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const PER_CUSTOMER = 10;
const { events, owner } = generateCustomers({ customers: Math.ceil(EVENTS / PER_CUSTOMER), eventsPerCustomer: PER_CUSTOMER, seed: 3 });
const traffic = interleave(events);
console.log(`bench:identity  ${traffic.length.toLocaleString('en-US')} events, ${owner.size.toLocaleString('en-US')} person identifiers, Node ${process.version}`);

// Baseline: the merge policy on an in-memory graph (members and counts kept per profile).
{
  const ownerOf = new Map<string, string>();
  const members = new Map<string, string[]>();
  const counts = new Map<string, Record<string, number>>();
  const key = (id: Identifier) => `${id.type}:${id.value}`;
  const graph: GraphView = { profileOf: (id) => ownerOf.get(key(id)), counts: (p) => counts.get(p) ?? {}, merges: () => 0, pinned: () => false };
  const add = (p: string, k: string, type: string) => {
    ownerOf.set(k, p);
    members.set(p, [...(members.get(p) ?? []), k]);
    const c = counts.get(p) ?? {};
    c[type] = (c[type] ?? 0) + 1;
    counts.set(p, c);
  };
  let next = 0;
  const started = performance.now();
  for (const e of traffic) {
    const plan = planEvent(extractIdentifiers(e).ids, graph, DEFAULT_RULES);
    if (plan.target === null && plan.links.length === 0) continue;
    const target = plan.target ?? `p${next++}`;
    for (const m of plan.merges) {
      for (const k of members.get(m.profileId) ?? []) add(target, k, k.slice(0, k.indexOf(':')));
      members.delete(m.profileId);
      counts.delete(m.profileId);
    }
    for (const l of plan.links) add(target, key(l.id), l.id.type);
  }
  const seconds = (performance.now() - started) / 1000;
  (globalThis as Record<string, unknown>).baseline = traffic.length / seconds;
  console.log(`  in-memory policy   ${Math.round(traffic.length / seconds).toLocaleString('en-US').padStart(9)} events/s`);
}

const dir = mkdtempSync(join(tmpdir(), 'tandem-identity-'));
try {
  const db = openDatabase({ dataDir: dir, sync: 'normal', ...STATE_DB }, STATE_MIGRATIONS);
  const store = new SqliteProfileStore(db);
  const receivedAt = Date.parse('2026-06-01T00:00:00Z');
  const records: LogRecord[] = [];
  for (let i = 0; i < traffic.length; i += 100) {
    const batch = traffic.slice(i, i + 100);
    const verdicts = batch.map((e) => judgeEvent(e, undefined, undefined, receivedAt, { futureToleranceMs: 86_400_000, minTimestampMs: 0 }, 0));
    records.push({ id: records.length + 1, workspaceId: 'default', sourceId: 'bench', receivedAt, kind: 'batch', body: Buffer.from(JSON.stringify({ batch })), meta: encodeMeta(verdicts) });
  }
  const log = { readForward: (after: number, limit: number) => records.slice(after, after + limit), get: (_w: string, id: number) => records[id - 1] };
  const { runOnce } = createProfileStage(log, store);
  const started = performance.now();
  while (runOnce(64) < records.length);
  const seconds = (performance.now() - started) / 1000;
  const rate = traffic.length / seconds;
  console.log(`  tandem stage       ${Math.round(rate).toLocaleString('en-US').padStart(9)} events/s  (${seconds.toFixed(1)} s, WAL, a transaction per 64 records, as the stage thread runs)`);
  console.log(`  ratio              ${(rate / ((globalThis as Record<string, unknown>).baseline as number)).toFixed(2)} of the in-memory policy`);

  // Ground truth: one profile per person, no profile with two persons, no junk linked.
  const personProfile = new Map<number, string>();
  const persons = new Map<string, number>();
  let wrong = 0;
  let missed = 0;
  for (const [k, person] of owner) {
    const i = k.indexOf(':');
    const profile = store.profileOf('default', { type: k.slice(0, i), value: k.slice(i + 1) });
    if (!profile) {
      missed++;
      continue;
    }
    const expected = personProfile.get(person) ?? profile;
    personProfile.set(person, expected);
    if (profile !== expected) missed++;
    const other = persons.get(profile);
    if (other !== undefined && other !== person) wrong++;
    persons.set(profile, person);
  }
  const junk = ['undefined', 'null', '[object Object]', '0', 'anonymous'].filter((v) => store.profileOf('default', { type: 'anonymous_id', value: v }) || store.profileOf('default', { type: 'user_id', value: v })).length;
  console.log(`  ground truth       ${wrong} wrong merges, ${missed} missed deterministic links, ${junk} junk values linked`);
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
