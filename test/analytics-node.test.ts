import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Analytics } from '@segment/analytics-node';
import { openTestApp, WRITE_KEY } from './helpers.ts';

test('the official @segment/analytics-node client delivers identify, track, page, group and alias to Tandem', async (t) => {
  const app = await openTestApp(t);
  const host = await app.app.listen({ port: 0, host: '127.0.0.1' });
  const analytics = new Analytics({ writeKey: WRITE_KEY, host, flushAt: 3, maxRetries: 0 });
  const failures: unknown[] = [];
  analytics.on('error', (err) => failures.push(err));
  analytics.identify({ userId: 'sdk-user', traits: { email: 'sdk@example.com', plan: 'pro' } });
  analytics.track({ userId: 'sdk-user', event: 'Order Completed', properties: { total: 99.5 } });
  analytics.page({ userId: 'sdk-user', name: 'Checkout', properties: { path: '/checkout' } });
  analytics.group({ userId: 'sdk-user', groupId: 'acme', traits: { name: 'Acme' } });
  analytics.alias({ userId: 'sdk-user', previousId: 'anon-sdk' });
  await analytics.closeAndFlush({ timeout: 10_000 });
  assert.deepEqual(failures, []);
  const events = await app.events('userId=sdk-user');
  assert.deepEqual(events.map((e) => e.type).sort(), ['alias', 'group', 'identify', 'page', 'track']);
  const track = events.find((e) => e.type === 'track')!;
  assert.equal(track.event, 'Order Completed');
  assert.equal(track.status, 'accepted');
  assert.equal(track.payload.properties.total, 99.5);
  assert.equal(track.payload.context.library.name, '@segment/analytics-node');
  assert.ok(Date.parse(track.timestamp) <= Date.parse(track.receivedAt) + 1000);
});
