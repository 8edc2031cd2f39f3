import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { hashToken } from '../src/access/credentials.ts';
import { purchaseTraits } from '../src/value/scores.ts';
import { summarize } from '../src/value/summary.ts';
import { parseTransactions } from '../src/value/transactions.ts';
import { basic, bearer, openTestApp } from './helpers.ts';

const near = (actual: number, expected: number, within: number, what: string) => assert.ok(Math.abs(actual - expected) <= within, `${what}: ${actual} is not within ${within} of ${expected}`);

test('CDNOW through the ingest API: the fit from the event log reproduces the published BG/NBD results and scores every customer', async (t) => {
  const app = await openTestApp(t);
  const purchases = parseTransactions(readFileSync(new URL('./data/clv/CDNOW_sample.txt', import.meta.url), 'utf8'));
  // Each transaction as an Order Completed event of its customer, in batches as a server would send them.
  const events = purchases.map((p, i) => ({ type: 'track', event: 'Order Completed', userId: p.customer, messageId: `cdnow-${i}`, timestamp: new Date(p.at).toISOString(), properties: { revenue: p.amount } }));
  for (let i = 0; i < events.length; i += 500) assert.equal((await app.send('/v1/batch', { batch: events.slice(i, i + 500) })).statusCode, 200);

  const fit = await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { model: 'bgnbd', unit: 'weeks', calibrationEnd: '1997-09-30', purchaseEvents: ['Order Completed'], revenueProperty: 'revenue' } });
  assert.equal(fit.statusCode, 201, fit.body);
  const body = fit.json();
  assert.equal(body.customers, 2357);
  near(body.params.r, 0.243, 0.0005, 'r');
  near(body.params.alpha, 4.414, 0.0005, 'α');
  near(body.params.a, 0.793, 0.0005, 'a');
  near(body.params.b, 2.426, 0.0005, 'b');
  near(body.log_likelihood, -9582.4, 0.05, 'log-likelihood');
  assert.equal(body.spend.customers, 946);
  near(body.spend.params.p, 6.25, 0.01, 'p');
  assert.ok(body.seconds > 0);

  // The summary Tandem builds from what it stored reproduces the published one.
  const stored = app.stores.profiles.contributions('default', purchaseTraits(['Order Completed'], 'revenue').map((t) => t.key));
  const userOf = new Map<string, string>();
  const summary = summarize(
    stored.map((c) => {
      if (!userOf.has(c.profileId)) userOf.set(c.profileId, app.stores.profiles.identifiers(c.profileId).find((i) => i.type === 'user_id')!.value);
      return { customer: userOf.get(c.profileId)!, at: c.timestamp, amount: c.value };
    }),
    { unit: 'weeks', calibrationEnd: Date.UTC(1997, 8, 30) },
  );
  const published = new Map(readFileSync(new URL('./data/clv/cdnow_customers_summary.csv', import.meta.url), 'utf8').trim().split(/\r?\n/).slice(1).map((l) => l.split(',')).map(([id, x, tx, T]) => [id!, { x: Number(x), tx: Number(tx), T: Number(T) }]));
  assert.equal(summary.length, 2357);
  for (const s of summary) {
    const p = published.get(s.customer)!;
    assert.equal(s.x, p.x, `customer ${s.customer} frequency`);
    near(s.tx, p.tx, 0.005, `customer ${s.customer} recency`);
    near(s.T, p.T, 0.005, `customer ${s.customer} T`);
  }

  const detail = (await app.inject({ method: 'GET', url: `/api/v1/clv/fits/${body.id}`, headers: { authorization: bearer() } })).json();
  assert.equal(detail.diagnostics.holdout.actual, 1882);
  near(detail.diagnostics.holdout.expected, 1653.4, 0.05, 'holdout expectation');
  const cumulative = detail.diagnostics.tracking.at(-1);
  assert.equal(cumulative.actualCumulative, 2457 + 1882, 'every repeat transaction, calibration and holdout');
  assert.ok(Math.abs(cumulative.expectedCumulative - cumulative.actualCumulative) / cumulative.actualCumulative < 0.1, 'the model tracks the cohort');
  assert.equal(detail.diagnostics.conditional[0].x, '0');
  const chart = await app.inject({ method: 'GET', url: `/api/v1/clv/fits/${body.id}/chart.svg`, headers: { authorization: bearer() } });
  assert.equal(chart.headers['content-type'], 'image/svg+xml');
  assert.match(chart.body, /^<svg[^>]*>[\s\S]*<path d="M[\d.,]+/);

  // Scoring runs in the background; then every customer's scores are computed traits.
  for (let i = 0; i < 500 && (await app.inject({ method: 'GET', url: '/api/v1/clv/fits', headers: { authorization: bearer() } })).json().scoring.status !== 'done'; i++) await new Promise((r) => setTimeout(r, 10));
  const jobs = (await app.inject({ method: 'GET', url: '/api/v1/clv/fits', headers: { authorization: bearer() } })).json();
  assert.equal(jobs.scoring.profiles.scored, 2357);
  app.stores.access.createToken('default', 'api', 'access', hashToken('tdm_access_clv_000000000001'));
  const traits = (await app.inject({ method: 'GET', url: '/v1/spaces/default/collections/users/profiles/user_id:1/traits?class=computed_trait&limit=20', headers: { authorization: basic('tdm_access_clv_000000000001') } })).json().traits;
  near(traits.p_alive, 0.7266, 0.0001, 'customer 1 (x = 2, t_x = 30.43, T = 38.86): P(alive)');
  assert.ok(['high', 'medium', 'low'].includes(traits.value_tier));
  assert.ok(traits.predicted_clv > 0 && traits.expected_purchases > 0 && traits.expected_spend > 0);
  const scores = (await app.inject({ method: 'GET', url: '/api/v1/clv/scores?limit=1000', headers: { authorization: bearer() } })).json();
  assert.equal(scores.data.length, 1000);
  const tiers = new Map<string, number>();
  for (let after: string | null = '', n = 0; after !== null && n < 10; n++) {
    const page: { data: Array<{ value_tier: string }>; next: string | null } = (await app.inject({ method: 'GET', url: `/api/v1/clv/scores?limit=1000&after=${after}`, headers: { authorization: bearer() } })).json();
    for (const s of page.data) tiers.set(s.value_tier, (tiers.get(s.value_tier) ?? 0) + 1);
    after = page.next;
  }
  assert.equal([...tiers.values()].reduce((a, b) => a + b, 0), 2357);
  assert.ok(tiers.get('high')! >= 0.19 * 2357 && tiers.get('high')! <= 0.22 * 2357, `about a fifth are high value: ${JSON.stringify([...tiers])}`);

  // An audience on the value tier, and the fit's errors.
  const audience = await app.inject({ method: 'POST', url: '/api/v1/audiences', headers: { authorization: bearer() }, payload: { key: 'high_value', text: 'value tier = "high" and predicted clv > 0' } });
  assert.equal(audience.statusCode, 201, audience.body);
  for (let i = 0; i < 500 && (await app.inject({ method: 'GET', url: '/api/v1/audiences/high_value', headers: { authorization: bearer() } })).json().backfill.status !== 'done'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/audiences/high_value', headers: { authorization: bearer() } })).json().size, tiers.get('high'));
  const pareto = await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { model: 'pareto_nbd', unit: 'weeks', calibrationEnd: '1997-09-30', revenueProperty: 'revenue' } });
  assert.equal(pareto.statusCode, 201, pareto.body);
  near(pareto.json().log_likelihood, -9595.0, 0.05, 'Pareto/NBD log-likelihood through the API');
  near(pareto.json().params.beta, 11.669, 0.05, 'β');
  const none = await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { purchaseEvents: ['Nothing Bought'] } });
  assert.equal(none.statusCode, 422);
  assert.equal(none.json().error.code, 'no_purchases');
  assert.equal((await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { model: 'nope' } })).statusCode, 400);
  await app.send('/v1/track', { type: 'track', event: 'Subscription Paid', userId: 'solo', messageId: 'solo-1', properties: { revenue: 9 } });
  const tooFew = await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { purchaseEvents: ['Subscription Paid'] } });
  assert.equal(tooFew.statusCode, 422);
  assert.equal(tooFew.json().error.code, 'too_few_customers');
});

test('the latest fit is redone on a schedule, on the data as it is then', async (t) => {
  const app = await openTestApp(t, { env: { TANDEM_CLV_REFRESH_HOURS: '0.0003' } });
  const day = (d: number) => new Date(Date.UTC(2026, 0, 1) + d * 86_400_000).toISOString();
  const orders = Array.from({ length: 300 }, (_, i) => ({ type: 'track', event: 'Order Completed', userId: `u${i % 60}`, messageId: `o${i}`, timestamp: day((i * 37) % 200), properties: { revenue: 10 + (i % 7) } }));
  assert.equal((await app.send('/v1/batch', { batch: orders })).statusCode, 200);
  const first = await app.inject({ method: 'POST', url: '/api/v1/clv/fit', headers: { authorization: bearer() }, payload: { unit: 'days' } });
  assert.equal(first.statusCode, 201, first.body);
  let fits: Array<{ id: string; request: { unit: string } }> = [];
  for (let i = 0; i < 100 && fits.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    fits = (await app.inject({ method: 'GET', url: '/api/v1/clv/fits', headers: { authorization: bearer() } })).json().data;
  }
  assert.ok(fits.length >= 2, 'a second fit appeared without a request');
  assert.equal(fits[0]!.request.unit, 'days', 'with the settings the owner chose');
  const refreshed = await app.inject({ method: 'POST', url: '/api/v1/clv/refresh', headers: { authorization: bearer() } });
  assert.equal(refreshed.statusCode, 201, refreshed.body);
});

test('purchases for a first fit are filled from the log in the background while live events keep coming', async (t) => {
  const { stageHarness } = await import('./stage-harness.ts');
  const { tempDir } = await import('./helpers.ts');
  const h = stageHarness(tempDir(t), 'purchases', { now: Date.UTC(2026, 5, 1) }, { backfillRecords: 1 });
  t.after(() => h.close());
  const order = (i: number) => ({ type: 'track', event: 'Order Completed', userId: `u${i % 3}`, messageId: `o${i}`, timestamp: new Date(Date.UTC(2026, 4, 1 + i)).toISOString(), properties: { revenue: 10 + i } });
  h.send(...Array.from({ length: 6 }, (_, i) => order(i)));
  h.admin('clv_purchases', { events: ['Order Completed'], property: 'revenue' }, { background: true });
  const keys = purchaseTraits(['Order Completed'], 'revenue').map((x) => x.key);
  assert.equal(h.store.backfill('w', '__purchases')?.phase, 'events', 'not filled inside the admin step');
  h.send(order(6));
  h.backfillStep();
  h.send(order(7));
  while (h.backfillStep());
  assert.equal(h.store.backfill('w', '__purchases')?.phase, 'done');
  const stored = h.store.contributions('w', keys);
  assert.deepEqual(stored.map((c) => c.value).sort((a, b) => a - b), [10, 11, 12, 13, 14, 15, 16, 17], 'every purchase once, old and new');
});
