import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMeta } from '../src/store/event-meta.ts';
import { verdictsOf } from '../src/store/log-encoding.ts';
import { openDatabase, STATE_DB, STATE_MIGRATIONS } from '../src/store/sqlite/database.ts';
import { basic, tempDir, WRITE_KEY } from './helpers.ts';
import { startServer } from './process.ts';

const CYCLES = Number(process.env.TANDEM_CRASH_CYCLES ?? 20);

/** Every messageId in the log that is an event (not a duplicate), with how often it appears. */
function storedCounts(dataDir: string): { counts: Map<string, number>; integrity: string } {
  const db = openDatabase({ dataDir, sync: 'full' });
  try {
    const integrity = (db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check;
    const counts = new Map<string, number>();
    for (const row of db.prepare('SELECT body, encoding, meta FROM log').iterate() as Iterable<{ body: Uint8Array; encoding: string | null; meta: string | Uint8Array }>) {
      for (const v of decodeMeta(verdictsOf(row.body, row.encoding, row.meta))) if (v.status !== 'duplicate') counts.set(v.messageId, (counts.get(v.messageId) ?? 0) + 1);
    }
    return { counts, integrity };
  } finally {
    db.close();
  }
}

test(`SIGKILL under ingest load, ${CYCLES} times: every acknowledged messageId is stored exactly once`, { timeout: 60_000 + CYCLES * 5_000 }, async (t) => {
  const dataDir = tempDir(t);
  const acked = new Set<string>();
  let seq = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const server = await startServer(dataDir);
    let killed = false;
    const retries = [...acked].slice(-20);
    const worker = async () => {
      while (!killed) {
        const ids = retries.length > 0 ? retries.splice(0, 5) : Array.from({ length: 10 }, () => `c${cycle}-${seq++}`);
        const batch = ids.map((messageId, i) => ({ type: 'track', event: 'Crash Test', userId: `u${i}`, messageId, properties: { cycle } }));
        try {
          const res = await fetch(`${server.url}/v1/batch`, { method: 'POST', body: JSON.stringify({ batch }), headers: { authorization: basic(WRITE_KEY), 'content-type': 'application/json' } });
          const text = await res.text();
          if (res.status === 200) for (const id of ids) acked.add(id);
          else if (!killed) assert.fail(`unexpected ${res.status}: ${text}`);
        } catch (err) {
          if (!killed) throw err;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 350));
    killed = true;
    server.child.kill('SIGKILL');
    await server.exited;
    await Promise.allSettled(workers);
    const { counts, integrity } = storedCounts(dataDir);
    assert.equal(integrity, 'ok', `cycle ${cycle}: integrity`);
    for (const id of acked) assert.equal(counts.get(id), 1, `cycle ${cycle}: ${id} acknowledged, stored ${counts.get(id) ?? 0} times`);
  }
  assert.ok(acked.size > CYCLES * 10, `load reached the server (${acked.size} acknowledged)`);

  // The profile stage was killed as often: once it catches up, every stored event is on a
  // profile exactly once (its state and checkpoint commit together).
  const server = await startServer(dataDir);
  try {
    const db = openDatabase({ dataDir, sync: 'full' });
    const state = openDatabase({ dataDir, sync: 'normal', ...STATE_DB }, STATE_MIGRATIONS);
    try {
      const last = (db.prepare('SELECT max(id) AS id FROM log').get() as { id: number }).id;
      const checkpoint = () => (state.prepare("SELECT log_id FROM checkpoint WHERE name = 'profiles'").get() as { log_id: number } | undefined)?.log_id ?? 0;
      for (let i = 0; i < 600 && checkpoint() < last; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(checkpoint(), last, 'the stage caught up after the crashes');
      const { counts } = storedCounts(dataDir);
      const events = (state.prepare('SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM profile_events').get() as { n: number; d: number });
      assert.equal(events.n, events.d);
      assert.equal(events.n, [...counts.values()].reduce((a, b) => a + b, 0), 'each stored event is on exactly one profile');
    } finally {
      db.close();
      state.close();
    }
  } finally {
    server.child.kill('SIGKILL');
    await server.exited;
  }
});
