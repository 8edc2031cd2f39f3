import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zstdCompressSync } from 'node:zlib';
import { encodeMeta } from '../src/store/event-meta.ts';
import { LOG_MIGRATIONS, openDatabase, STATE_DB, STATE_MIGRATIONS } from '../src/store/sqlite/database.ts';
import { openSqliteStores } from '../src/store/sqlite/index.ts';
import { SqliteProfileStore } from '../src/store/sqlite/profile-store.ts';
import { tempDir } from './helpers.ts';

const DAY = 86_400_000;

test('state.db from the first schema keeps its contributions, and windowed ones still lapse', (t) => {
  const dir = tempDir(t);
  const old = openDatabase({ dataDir: dir, sync: 'normal', ...STATE_DB }, STATE_MIGRATIONS.slice(0, 1));
  old.exec(`INSERT INTO profiles (id, workspace_id, created_at, updated_at) VALUES ('p1', 'w', 0, 0);
    INSERT INTO computed_traits VALUES ('w', 'orders_7d', '{"key":"orders_7d","kind":"count","event":"Order Completed","windowDays":7}', 0);
    INSERT INTO computed_traits VALUES ('w', 'orders', '{"key":"orders","kind":"count","event":"Order Completed"}', 0);
    INSERT INTO ct_values (workspace_id, profile_id, key, ts, event_id, value, num) VALUES
      ('w', 'p1', 'orders_7d', ${10 * DAY}, '1.0', '1', 1), ('w', 'p1', 'orders_7d', ${12 * DAY}, '2.0', '1', 1), ('w', 'p1', 'orders', ${10 * DAY}, '1.0', '1', 1);`);
  old.close();

  const db = openDatabase({ dataDir: dir, sync: 'normal', ...STATE_DB }, STATE_MIGRATIONS);
  t.after(() => db.close());
  assert.equal((db.prepare('SELECT count(*) AS n FROM ct_values').get() as { n: number }).n, 3);
  assert.deepEqual({ ...db.prepare('SELECT profile_id, expires_at FROM profile_expiry').get() }, { profile_id: 'p1', expires_at: 17 * DAY }, 'the oldest windowed contribution lapses after 7 days');
  const store = new SqliteProfileStore(db);
  const traits = store.computedTraits('w');
  assert.deepEqual(store.expire('w', traits, 16 * DAY), [], 'nothing lapsed yet');
  assert.deepEqual(store.expire('w', traits, 18 * DAY), [{ profileId: 'p1', keys: ['orders_7d'] }]);
  assert.equal((db.prepare('SELECT expires_at FROM profile_expiry').get() as { expires_at: number }).expires_at, 19 * DAY, 'next: the contribution of day 12');
  assert.deepEqual(store.expire('w', traits, 20 * DAY), [{ profileId: 'p1', keys: ['orders_7d'] }]);
  assert.equal(db.prepare('SELECT * FROM profile_expiry').get(), undefined, 'nothing windowed left');
  assert.equal((db.prepare("SELECT count(*) AS n FROM ct_values WHERE key = 'orders'").get() as { n: number }).n, 1, 'all-time contributions stay');
});

test('tandem.db from before compressed bodies: old rows read as they were, new batches are stored compressed with their verdicts', async (t) => {
  const dir = tempDir(t);
  const old = openDatabase({ dataDir: dir, sync: 'normal' }, LOG_MIGRATIONS.slice(0, LOG_MIGRATIONS.length - 1));
  old.prepare("INSERT INTO log (workspace_id, source_id, received_at, kind, body, meta) VALUES ('w', 's', 1, 'track', ?, '[]')").run(Buffer.from('{"type":"track","event":"Old"}'));
  old.close();
  const stores = openSqliteStores({ dataDir: dir, sync: 'normal' });
  t.after(() => stores.close());
  const batch = Buffer.from(JSON.stringify({ batch: Array.from({ length: 100 }, (_, i) => ({ type: 'track', event: 'Order Completed', userId: `user-${i}`, properties: { revenue: i } })) }));
  const { id } = await stores.log.append({ workspaceId: 'w', sourceId: 's', receivedAt: 2, kind: 'batch', body: batch, meta: '[]' });
  assert.equal(stores.log.get('w', 1)?.body.toString(), '{"type":"track","event":"Old"}');
  assert.deepEqual(stores.log.get('w', id)?.body, batch);
  const db = openDatabase({ dataDir: dir, sync: 'normal' });
  t.after(() => db.close());
  const rows = db.prepare('SELECT id, encoding, length(body) AS bytes FROM log ORDER BY id').all() as Array<{ id: number; encoding: string | null; bytes: number }>;
  assert.deepEqual(rows.map((r) => r.encoding), [null, 'zstd+meta']);
  assert.ok(rows[1]!.bytes * 4 < batch.length, `a batch of similar events shrinks several times (${rows[1]!.bytes} of ${batch.length} bytes)`);
});

test('rows from before verdicts and bytes shared a frame (body compressed alone, verdicts compressed alone or as text) read as they were, and the dedupe window reloads their ids', async (t) => {
  const dir = tempDir(t);
  const db = openDatabase({ dataDir: dir, sync: 'normal' });
  db.exec("INSERT INTO workspaces VALUES ('w', 'W', 0)");
  const ids = Array.from({ length: 40 }, (_, i) => `old${i}`);
  const json = Buffer.from(JSON.stringify({ batch: ids.map((messageId) => ({ type: 'track', event: 'Viewed', userId: 'u', messageId })) }));
  const text = encodeMeta(ids.map((messageId) => ({ messageId, type: 'track', status: 'accepted', timestamp: 1, reasons: [], userId: 'u', anonymousId: undefined, event: 'Viewed' })));
  const insert = db.prepare("INSERT INTO log (workspace_id, source_id, received_at, kind, body, meta, encoding) VALUES ('w', 's', ?, 'batch', ?, ?, ?)");
  const now = Date.now();
  insert.run(now, zstdCompressSync(json), zstdCompressSync(Buffer.from(text)), 'zstd');
  insert.run(now, json, '[]', null);
  db.close();
  const stores = openSqliteStores({ dataDir: dir, sync: 'normal' });
  t.after(() => stores.close());
  assert.deepEqual([stores.log.get('w', 1)?.body, stores.log.get('w', 1)?.meta], [json, text]);
  assert.deepEqual([stores.log.get('w', 2)?.body, stores.log.get('w', 2)?.meta], [json, '[]']);
  assert.deepEqual(stores.log.readVerdictsForward(0, 2).map((r) => r.meta), [text, '[]']);
  const again = await stores.log.append({ workspaceId: 'w', sourceId: 's', receivedAt: now + 1, kind: 'batch', body: json, meta: text });
  assert.deepEqual(again.duplicates, ids.map((_, i) => i), 'the ids of compressed verdicts are in the window after a start');
});
