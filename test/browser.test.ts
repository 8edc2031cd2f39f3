import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { openTestApp, WRITE_KEY } from './helpers.ts';

const CHROMIUM = process.env.TANDEM_CHROMIUM ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
// With CI=true a missing browser is a failure, not a skip.
const skip = !available && process.env.CI !== 'true' ? `no Chromium at ${CHROMIUM} (apt-get install chromium)` : false;

test('Segment\'s browser library (analytics-next), loaded unchanged with cdnURL pointing at Tandem, sends identify, track and page', { skip, timeout: 60_000 }, async (t) => {
  assert.ok(available, `Chromium is required at ${CHROMIUM}`);
  const app = await openTestApp(t);
  const tandem = await app.app.listen({ port: 0, host: '127.0.0.1' });

  // The page comes from another origin than Tandem, as on a real shop: ingest must allow CORS.
  const umd = join(dirname(createRequire(import.meta.url).resolve('@segment/analytics-next/package.json')), 'dist', 'umd');
  const page = `<!doctype html><script src="/umd/index.js"></script><script>
    AnalyticsNext.AnalyticsBrowser.load({ writeKey: ${JSON.stringify(WRITE_KEY)}, cdnURL: ${JSON.stringify(tandem)} })
      .then(async ([analytics]) => {
        await analytics.identify('browser-user', { plan: 'pro', email: 'b@example.com' });
        await analytics.track('Button Clicked', { label: 'Buy' });
        await analytics.page('Shop', 'Espresso');
        window.sent = true;
      })
      .catch((err) => { window.failed = String(err); });
  </script>`;
  const site = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    const file = normalize(join(umd, url.pathname.replace(/^\/umd\//, '')));
    if (url.pathname.startsWith('/umd/') && file.startsWith(umd) && existsSync(file)) return res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  t.after(() => site.close());
  const { port } = site.address() as { port: number };

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.after(() => browser.close());
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${port}/`);
  await tab.waitForFunction(() => (window as unknown as { sent?: boolean; failed?: string }).sent || (window as unknown as { failed?: string }).failed, undefined, { timeout: 30_000 });
  assert.equal(await tab.evaluate(() => (window as unknown as { failed?: string }).failed), undefined);

  let events: Array<Record<string, any>> = [];
  for (let i = 0; i < 50 && events.length < 3; i++) {
    events = await app.events('userId=browser-user');
    if (events.length < 3) await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(events.map((e) => e.type).sort(), ['identify', 'page', 'track']);
  const track = events.find((e) => e.type === 'track')!;
  assert.equal(track.event, 'Button Clicked');
  assert.equal(track.status, 'accepted');
  assert.equal(track.payload.context.library.name, 'analytics.js');
  assert.match(track.payload.context.page.url, new RegExp(`127.0.0.1:${port}`));
  assert.ok(track.anonymousId, 'the browser library sends its anonymousId along');
});
