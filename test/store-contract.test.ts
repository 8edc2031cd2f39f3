import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { decodeMeta, encodeMeta } from '../src/store/event-meta.ts';
import { storedEntry } from '../src/store/log-encoding.ts';
import { keyList, type LogEntry, type Stores } from '../src/store/ports.ts';
import { openSqliteStores } from '../src/store/sqlite/index.ts';
import { tempDir } from './helpers.ts';

/**
 * One behaviour suite for every store adapter. Each adapter opens a store on a "location" and
 * can reopen the same location, as a restarted or second process would.
 */
const HOUR = 3_600_000;
type Adapter = { name: string; location: (t: TestContext) => string; open: (location: string) => Stores };
const ADAPTERS: Adapter[] = [
  { name: 'sqlite', location: (t) => tempDir(t), open: (dataDir) => openSqliteStores({ dataDir, sync: 'full', dedupeWindowMs: HOUR }) },
  // The PostgreSQL adapter joins this list with cluster mode.
];

const NOW = Date.now();
const meta = (...ids: string[]) => encodeMeta(ids.map((messageId) => ({ messageId, type: 'track', status: 'accepted' as const, timestamp: NOW, reasons: [], userId: 'u', anonymousId: undefined, event: 'e' })));
const entry = (i: number, workspaceId = 'default', ids = [`m${i}`], receivedAt = NOW + i): LogEntry => ({ workspaceId, sourceId: 'src_1', receivedAt, kind: 'batch', body: Buffer.from(`{"n":${i}}`), meta: meta(...ids) });

for (const adapter of ADAPTERS) {
  describe(`store contract: ${adapter.name}`, () => {
    const open = (t: TestContext, location = adapter.location(t)) => {
      const stores = adapter.open(location);
      t.after(() => stores.close());
      stores.access.ensureWorkspace('default', 'Default');
      return { stores, location };
    };

    test('event log: concurrent appends each resolve with an increasing id after commit, bytes intact', async (t) => {
      const { stores } = open(t);
      const ids = (await Promise.all(Array.from({ length: 200 }, (_, i) => stores.log.append(entry(i))))).map((a) => a.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.equal(new Set(ids).size, 200);
      const back = stores.log.readBackward('default', Number.MAX_SAFE_INTEGER, 500);
      assert.equal(back.length, 200);
      assert.equal(back[0]!.body.toString(), '{"n":199}');
      assert.equal(decodeMeta(back[0]!.meta)[0]!.messageId, 'm199');
      assert.equal(stores.log.readForward(ids[9]!, 5)[0]!.id, ids[10]);
      assert.equal(stores.log.lastId(), ids[199]);
      assert.equal(stores.log.get('default', ids[3]!)?.receivedAt, NOW + 3);
      assert.equal(stores.log.pendingBytes(), 0);
    });

    test('event log: bodies of every size come back byte for byte', async (t) => {
      const { stores } = open(t);
      const bodies = [Buffer.from('{}'), Buffer.from(JSON.stringify({ batch: Array.from({ length: 200 }, (_, i) => ({ type: 'track', event: 'Viewed', userId: `u${i}`, properties: { é: '✓\u2028', i } })) })), Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256))];
      const ids = await Promise.all(bodies.map((body, i) => stores.log.append({ ...entry(i), body })));
      for (const [i, { id }] of ids.entries()) assert.deepEqual(stores.log.get('default', id)?.body, bodies[i]);
      assert.deepEqual(stores.log.readForward(0, 10).map((r) => r.body), bodies);
    });

    test('event log: reads are per workspace', async (t) => {
      const { stores } = open(t);
      stores.access.ensureWorkspace('acme', 'Acme');
      const a = await stores.log.append(entry(1));
      const b = await stores.log.append(entry(2, 'acme'));
      assert.deepEqual(stores.log.readBackward('default', Number.MAX_SAFE_INTEGER, 10).map((r) => r.id), [a.id]);
      assert.equal(stores.log.get('default', b.id), undefined);
    });

    test('event log: a messageId appended again within the window is stored as a duplicate, per workspace, across reopening', async (t) => {
      const { stores, location } = open(t);
      stores.access.ensureWorkspace('acme', 'Acme');
      assert.deepEqual((await stores.log.append(entry(1, 'default', ['x', 'y']))).duplicates, []);
      const again = await stores.log.append(entry(2, 'default', ['y', 'z', 'z']));
      assert.deepEqual(again.duplicates, [0, 2]);
      assert.deepEqual(decodeMeta(stores.log.get('default', again.id)!.meta).map((e) => e.status), ['duplicate', 'accepted', 'duplicate']);
      assert.deepEqual((await stores.log.append(entry(3, 'acme', ['x']))).duplicates, [], 'another workspace has its own window');
      const [late, concurrent] = await Promise.all([stores.log.append(entry(4, 'default', ['x'], NOW + HOUR + 10)), stores.log.append(entry(5, 'default', ['w']))]);
      assert.deepEqual(late.duplicates, [], 'after the window the id is new again');
      assert.deepEqual(concurrent.duplicates, []);
      await stores.close();
      const reopened = adapter.open(location);
      t.after(() => reopened.close());
      assert.deepEqual((await reopened.log.append(entry(6, 'default', ['w', 'v']))).duplicates, [0], 'the window survives reopening');
    });

    test('event log: an entry stored as one frame (zstd+meta) reads back as its JSON and verdicts, repeats marked, across reopening', async (t) => {
      const { stores, location } = open(t);
      const ids = Array.from({ length: 40 }, (_, i) => `f${i}`);
      const json = Buffer.from(JSON.stringify({ batch: ids.map((messageId) => ({ type: 'track', event: 'Viewed', userId: 'u', messageId })) }));
      const stored = storedEntry(json, meta(...ids));
      assert.equal(stored.encoding, 'zstd+meta');
      assert.ok(stored.body.byteLength < json.byteLength, 'compressed');
      const oneFrame = (i: number, keys?: string[]): LogEntry => ({ ...entry(i), body: Buffer.from(stored.body), bodyEncoding: 'zstd+meta', meta: stored.meta, ...(keys ? { dedupeKeys: keyList(keys) } : {}) });
      const first = await stores.log.append(oneFrame(1, ids));
      assert.deepEqual(first.duplicates, []);
      const record = stores.log.get('default', first.id)!;
      assert.deepEqual([record.body, record.meta], [json, meta(...ids)]);
      assert.deepEqual(stores.log.readForward(first.id - 1, 1)[0]?.body, json);
      assert.equal(stores.log.readVerdictsForward(first.id - 1, 1)[0]?.meta, meta(...ids));
      const again = await stores.log.append(oneFrame(2));
      assert.deepEqual(again.duplicates, ids.map((_, i) => i), 'ids read from the frame when no keys are given');
      const marked = stores.log.get('default', again.id)!;
      assert.deepEqual(marked.body, json, 'the bytes survive the verdicts being marked');
      assert.ok(decodeMeta(marked.meta).every((v) => v.status === 'duplicate'));
      await stores.close();
      const reopened = adapter.open(location);
      t.after(() => reopened.close());
      assert.deepEqual((await reopened.log.append(entry(3, 'default', ['f7', 'new']))).duplicates, [0], 'the window reloads ids from frames');
      const plain = reopened.log.get('default', (await reopened.log.append(entry(4, 'default', ids.map((id) => `p${id}`)))).id)!;
      assert.deepEqual([plain.body.toString(), decodeMeta(plain.meta).length], ['{"n":4}', 40], 'an entry the caller did not store is stored by the log and reads back the same');
    });

    test('event log: an entry with dedupe keys (a replay) is checked by its keys, not by the messageIds it carries', async (t) => {
      const { stores } = open(t);
      await stores.log.append(entry(1, 'default', ['q']));
      const replay = { ...entry(2, 'default', ['q']), dedupeKeys: keyList(['replay:1.0']) };
      assert.deepEqual((await stores.log.append(replay)).duplicates, [], 'the quarantined original does not make its replay a duplicate');
      assert.deepEqual((await stores.log.append({ ...replay, receivedAt: NOW + 3 })).duplicates, [0], 'a second replay is');
    });

    test('event log: what was acknowledged is there after reopening', async (t) => {
      const { stores, location } = open(t);
      await Promise.all([1, 2, 3].map((i) => stores.log.append(entry(i))));
      await stores.close();
      const again = adapter.open(location);
      t.after(() => again.close());
      assert.equal(again.log.readBackward('default', Number.MAX_SAFE_INTEGER, 10).length, 3);
    });

    test('access: write keys and tokens are scoped to their workspace and revocable', async (t) => {
      const { stores } = open(t);
      stores.access.ensureWorkspace('acme', 'Acme');
      assert.equal(stores.access.ensureWorkspace('acme', 'Acme'), false, 'ensureWorkspace is idempotent');
      const key = stores.access.createWriteKey('default', 'web', 'wk_contract_1');
      assert.equal(stores.access.findWriteKey('wk_contract_1')?.sourceId, key.sourceId);
      assert.equal(stores.access.createWriteKey('default', 'web', 'wk_contract_2').sourceId, key.sourceId, 'same source name, same source');
      assert.equal(stores.access.revokeWriteKey('acme', 'wk_contract_1'), false, 'another workspace cannot revoke it');
      assert.equal(stores.access.revokeWriteKey('default', 'wk_contract_1'), true);
      assert.notEqual(stores.access.findWriteKey('wk_contract_1')?.revokedAt, null);
      const token = stores.access.createToken('default', 'ci', 'engineer', 'hash-1');
      assert.equal(stores.access.findTokenByHash('hash-1')?.role, 'engineer');
      assert.deepEqual(stores.access.listTokens('acme'), []);
      assert.equal(stores.access.revokeToken('acme', token.id), false);
      assert.equal(stores.access.revokeToken('default', token.id), true);
      assert.equal(stores.access.revokeToken('default', token.id), false, 'revoking twice reports nothing to do');
    });

    test('access: version() changes when another process writes', async (t) => {
      const { stores, location } = open(t);
      const before = stores.access.version();
      const other = adapter.open(location);
      other.access.createToken('default', 'cli', 'owner', 'hash-cli');
      await other.close();
      assert.notEqual(stores.access.version(), before);
      assert.equal(stores.ready(), true);
    });

    test('activation: deliveries queued with the position in one step, due in order per profile, outcomes and dead letters kept across a reopen', async (t) => {
      const { stores, location } = open(t);
      const store = stores.activation;
      const destination = { id: 'dst_1', workspaceId: 'default', name: 'hook', url: 'https://hooks.example.com/x', secret: 's', purposes: ['ads'], consentMode: 'opt_in' as const, enabled: true, createdAt: NOW, createdBy: 'tok' };
      store.saveDestination(destination);
      const activation = { id: 'act_1', workspaceId: 'default', destinationId: 'dst_1', audienceKey: 'pros', traits: ['plan'], identifiers: ['user_id'], after: 5, syncAfter: '', syncChange: 5, createdAt: NOW, createdBy: 'tok' };
      store.createActivation(activation);
      assert.equal(store.syncMembers(activation, [{ profileId: 'p1', change: 'enter', at: NOW, eventId: 'first' }], null, NOW), true);
      assert.equal(store.syncMembers(activation, [{ profileId: 'p9', change: 'enter', at: NOW, eventId: 'again' }], null, NOW), false, 'a sync page from a stale cursor does nothing');
      assert.equal(store.activation('default', 'act_1')?.syncAfter, null);
      store.enqueue(activation, [{ profileId: 'p1', change: 'exit', at: NOW + 1, eventId: 'e1' }, { profileId: 'p2', change: 'enter', at: NOW + 1, eventId: 'e2' }], 9, NOW);
      store.enqueue(activation, [{ profileId: 'p3', change: 'enter', at: NOW, eventId: 'stale' }], 10, NOW);
      assert.equal(store.activation('default', 'act_1')?.after, 9, 'an enqueue from a stale position does nothing');
      // p1's exit waits for its entry; p2 is due beside it.
      let due = store.due('dst_1', NOW, 10);
      assert.deepEqual(due.map((d) => [d.profileId, d.kind]), [['p1', 'audience_entered'], ['p2', 'audience_entered']]);
      assert.deepEqual(store.due('dst_1', NOW - 1, 10), [], 'not before they are due');
      store.updateDeliveries([{ id: due[0]!.id, fields: { status: 'delivered', attempts: 1, body: '{}', lastStatus: 200, finishedAt: NOW } }, { id: due[1]!.id, fields: { status: 'dead', attempts: 3, lastError: 'HTTP 500', finishedAt: NOW } }]);
      assert.equal(store.lastKind('act_1', 'p1', false), 'audience_entered', 'the destination has p1');
      assert.equal(store.lastKind('act_1', 'p1', true), 'audience_exited', 'and will lose it');
      assert.equal(store.lastKind('act_1', 'p2', false), undefined);
      due = store.due('dst_1', NOW + 10, 10);
      assert.deepEqual(due.map((d) => [d.profileId, d.kind]), [['p1', 'audience_exited']]);
      assert.equal(store.pending(), 1);
      const other = adapter.open(location);
      try {
        assert.deepEqual(other.activation.deliveryCounts('dst_1'), { delivered: 1, dead: 1, pending: 1 });
        assert.equal(other.activation.retryDead('acme', 'dst_1', undefined, NOW), 0, "another workspace's destination");
        assert.equal(other.activation.retryDead('default', 'dst_1', undefined, NOW), 1);
        assert.deepEqual(other.activation.deliveries('default', 'dst_1', { status: 'pending', before: Number.MAX_SAFE_INTEGER, limit: 10 }).map((d) => d.attempts), [0, 0]);
      } finally {
        await other.close();
      }
      assert.equal(store.cursor('consent'), 0);
      assert.equal(store.queueAtCursor('consent', 0, 7, [{ activation, change: { profileId: 'p2', change: 'exit', at: NOW, eventId: 'consent:7' } }], NOW), true);
      assert.equal(store.queueAtCursor('consent', 0, 9, [{ activation, change: { profileId: 'p9', change: 'exit', at: NOW, eventId: 'again' } }], NOW), false, 'from a stale position, nothing');
      assert.equal(store.cursor('consent'), 7);
      assert.equal(store.deleteActivation('default', 'act_1'), true);
      assert.deepEqual(store.deliveryCounts('dst_1'), { delivered: 1, cancelled: 3 });
      assert.equal(store.destination('acme', 'dst_1'), undefined);
      assert.equal(store.deleteDestination('default', 'dst_1'), true);
      assert.deepEqual(store.destinations('default'), []);
    });
  });
}
