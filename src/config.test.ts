import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONFIG_SCHEMA, loadConfig } from './config.ts';

test('defaults follow DESIGN.md', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.dataDir, './data');
  assert.equal(c.dedupeWindowMs, 24 * 3_600_000);
  assert.equal(c.adminToken, undefined);
  assert.equal(c.sync, 'full');
});

test('values are coerced from strings; CLI overrides win over the environment', () => {
  const c = loadConfig({ TANDEM_PORT: '9000', TANDEM_DEDUPE_WINDOW_HOURS: '0.5' }, { TANDEM_PORT: '9100' });
  assert.equal(c.port, 9100);
  assert.equal(c.dedupeWindowMs, 1_800_000);
});

test('a bad value fails fast, naming the variable', () => {
  assert.throws(() => loadConfig({ TANDEM_PORT: 'eighty' }), /TANDEM_PORT/);
  assert.throws(() => loadConfig({ TANDEM_PORT: '70000' }), /TANDEM_PORT/);
  assert.throws(() => loadConfig({ TANDEM_SYNC: 'sometimes' }), /TANDEM_SYNC/);
  assert.throws(() => loadConfig({ TANDEM_ADMIN_TOKEN: 'short' }), /TANDEM_ADMIN_TOKEN/);
  assert.throws(() => loadConfig({ TANDEM_MIN_TIMESTAMP: 'long ago' }), /TANDEM_MIN_TIMESTAMP/);
});

test('the README documents every variable', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const name of Object.keys(CONFIG_SCHEMA.properties)) assert.match(readme, new RegExp(`\\| \`${name}\` \\|`), name);
});
