import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'node:test';
import { bearer, openTestApp } from './helpers.ts';

test('users sign in with email and password (scrypt); sessions carry their role; disabling a user ends their sessions at once', async (t) => {
  const app = await openTestApp(t);
  const create = await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: bearer() }, payload: { email: 'Mia@Example.com', name: 'Mia', role: 'marketer', password: 'correct horse battery' } });
  assert.equal(create.statusCode, 201, create.body);
  const user = create.json();
  assert.equal(user.email, 'mia@example.com');
  assert.equal(user.pii, false);
  assert.equal((await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: bearer() }, payload: { email: 'x@example.com', role: 'analyst', password: 'short' } })).statusCode, 400, 'passwords of 12 characters at least');
  assert.equal((await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: bearer() }, payload: { email: 'mia@example.com', role: 'analyst', password: 'another long one' } })).statusCode, 400, 'one user per email');

  const db = new DatabaseSync(join(app.dataDir, 'tandem.db'), { readOnly: true });
  t.after(() => db.close());
  const stored = (db.prepare('SELECT password_hash FROM users WHERE email = ?').get('mia@example.com') as { password_hash: string }).password_hash;
  assert.match(stored, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
  assert.ok(!stored.includes('horse'));

  const signIn = (email: string, password: string) => app.inject({ method: 'POST', url: '/api/v1/sessions', payload: { email, password } });
  const wrong = await signIn('mia@example.com', 'wrong horse battery');
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().error.code, 'invalid_credentials');
  assert.equal((await signIn('nobody@example.com', 'correct horse battery')).json().error.code, 'invalid_credentials', 'an unknown email looks the same');
  const session = await signIn(' MIA@example.com ', 'correct horse battery');
  assert.equal(session.statusCode, 201, session.body);
  const { token, role, expires_at } = session.json();
  assert.equal(role, 'marketer');
  assert.ok(Date.parse(expires_at) > Date.now() + 11 * 3_600_000);
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/audiences', headers: { authorization: bearer(token) } })).statusCode, 200);
  assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/tracking-plans/web', headers: { authorization: bearer(token) }, payload: { definition: {} } })).statusCode, 403, 'a session has its user\'s role');
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/users', headers: { authorization: bearer(token) } })).statusCode, 403);
  assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: { authorization: bearer() } })).json().data.map((x: { name: string }) => x.name), ['bootstrap'], 'sessions are not listed as tokens');

  assert.equal((await app.inject({ method: 'DELETE', url: `/api/v1/users/${user.id}`, headers: { authorization: bearer() } })).statusCode, 204);
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/audiences', headers: { authorization: bearer(token) } })).statusCode, 401, 'revoked at once');
  assert.equal((await signIn('mia@example.com', 'correct horse battery')).statusCode, 401, 'a disabled user cannot sign in');
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/users', headers: { authorization: bearer() } })).json().data[0].disabled_at !== null, true);

  await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: bearer() }, payload: { email: 'leo@example.com', role: 'analyst', password: 'leo has a long password' } });
  for (let i = 0; i < 10; i++) assert.equal((await signIn('leo@example.com', `guess number ${i}!!`)).statusCode, 401);
  const locked = await signIn('leo@example.com', 'leo has a long password');
  assert.equal(locked.statusCode, 429, 'ten failures pause sign-ins for that email');
});
