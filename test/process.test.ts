import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { ADMIN_TOKEN, basic, bearer, openTestApp, tempDir, trackEvent, WRITE_KEY } from './helpers.ts';
import { runCli, startServer } from './process.ts';

const post = (url: string, body: unknown, key = WRITE_KEY) => fetch(`${url}/v1/batch`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: basic(key), 'content-type': 'application/json' } });
const events = async (url: string, query = '', token = ADMIN_TOKEN) => (await (await fetch(`${url}/api/v1/events?limit=500&${query}`, { headers: { authorization: bearer(token) } })).json()).data as Array<{ messageId: string }>;

describe('restarts', () => {
  test('dedupe survives a restart', async (t) => {
    const dataDir = tempDir(t);
    const e = trackEvent();
    const first = await openTestApp(t, { dataDir });
    assert.equal((await first.send('/v1/track', e)).statusCode, 200);
    await first.close();
    const second = await openTestApp(t, { dataDir });
    assert.equal((await second.send('/v1/track', e)).statusCode, 200);
    assert.equal((await second.events(`messageId=${e.messageId}`)).length, 1);
    assert.equal((await second.events(`messageId=${e.messageId}&status=duplicate`)).length, 1);
  });

  test('SIGTERM with requests in flight: every acknowledged event is there after restart, and the process exits 0', async (t) => {
    const dataDir = tempDir(t);
    const server = await startServer(dataDir);
    const sent = Array.from({ length: 60 }, (_, i) => Array.from({ length: 20 }, () => trackEvent({ userId: `u${i}` })));
    const pending = sent.map((batch) => post(server.url, { batch }).then((r) => (r.status === 200 ? batch : []), () => []));
    setTimeout(() => server.child.kill('SIGTERM'), 5);
    const acked = (await Promise.all(pending)).flat();
    assert.equal(await server.exited, 0);
    const again = await startServer(dataDir);
    t.after(() => again.child.kill('SIGKILL'));
    const stored = new Set((await events(again.url, '')).map((e) => e.messageId));
    for (let page = await fetch(`${again.url}/api/v1/events?limit=500`, { headers: { authorization: bearer() } }).then((r) => r.json()); page.cursor.next; ) {
      page = await fetch(`${again.url}${page.cursor.url}`, { headers: { authorization: bearer() } }).then((r) => r.json());
      for (const e of page.data) stored.add(e.messageId);
    }
    for (const e of acked) assert.ok(stored.has(e.messageId as string), `${e.messageId} acknowledged before SIGTERM`);
  });
});

describe('tandem CLI', () => {
  test('keys and tokens: create, list, revoke, with the server running; revocation takes effect at once', async (t) => {
    const dataDir = tempDir(t);
    const server = await startServer(dataDir);
    t.after(() => server.child.kill('SIGKILL'));
    const cli = async (...args: string[]) => {
      const r = await runCli([...args, '--data-dir', dataDir]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    const key = await cli('keys', 'create', '--source', 'ios');
    assert.match(key.key, /^wk_/);
    assert.equal((await post(server.url, { batch: [trackEvent()] }, key.key)).status, 200);
    assert.ok((await cli('keys', 'list')).some((k: { key: string; sourceName: string }) => k.key === key.key && k.sourceName === 'ios'));
    await cli('keys', 'revoke', key.key);
    assert.equal((await post(server.url, { batch: [trackEvent()] }, key.key)).status, 401);

    const token = await cli('tokens', 'create', '--name', 'ci', '--role', 'analyst');
    assert.match(token.token, /^tdm_/);
    assert.ok(Array.isArray(await events(server.url, '', token.token)));
    const listed = await cli('tokens', 'list');
    assert.ok(listed.some((x: { id: string; token?: string }) => x.id === token.id && x.token === undefined));
    await cli('tokens', 'revoke', token.id);
    assert.equal((await fetch(`${server.url}/api/v1/events`, { headers: { authorization: bearer(token.token) } })).status, 401);

    const bad = await runCli(['tokens', 'create', '--name', 'x', '--role', 'root', '--data-dir', dataDir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid_request: .*role/);
    const usage = await runCli(['frobnicate', '--data-dir', dataDir]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: tandem/);
  });

  test('a bad configuration stops start with a message naming the variable', async (t) => {
    const r = await runCli(['start', '--data-dir', tempDir(t)], { TANDEM_PORT: 'eighty' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /TANDEM_PORT/);
  });
});

describe('slow clients', () => {
  test('hundreds of connections trickling bytes do not stop others; unfinished bodies time out', { timeout: 30_000 }, async (t) => {
    const dataDir = tempDir(t);
    const server = await startServer(dataDir, { TANDEM_REQUEST_TIMEOUT_MS: '2000' });
    t.after(() => server.child.kill('SIGKILL'));
    const { port } = new URL(server.url);
    const sockets = Array.from({ length: 300 }, () => {
      const s = connect(Number(port), '127.0.0.1');
      s.on('error', () => {});
      s.write(`POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nAuthorization: ${basic(WRITE_KEY)}\r\n\r\n{`);
      return s;
    });
    const drip = setInterval(() => sockets.forEach((s) => s.writable && s.write(' ')), 500);
    t.after(() => clearInterval(drip));
    const started = performance.now();
    const res = await post(server.url, { batch: [trackEvent()] });
    assert.equal(res.status, 200);
    assert.ok(performance.now() - started < 2000, 'a normal client is served while slow ones hang');
    const closed = await Promise.all(sockets.slice(0, 20).map((s) => new Promise<string>((resolve) => {
      let data = '';
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolve(data));
    })));
    for (const answer of closed) assert.match(answer, /^HTTP\/1.1 408|^$/);
    sockets.forEach((s) => s.destroy());
  });
});
