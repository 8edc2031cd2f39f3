import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateCustomers, interleave } from '../bench/data/customers.ts';
import { openTestApp } from './helpers.ts';

test('resolution of synthetic customers: zero wrong merges, zero missed deterministic links', { timeout: 120_000 }, async (t) => {
  const app = await openTestApp(t);
  const { events, owner, shared } = generateCustomers({ customers: 400, eventsPerCustomer: 12, seed: 11 });
  const traffic = interleave(events);
  for (let i = 0; i < traffic.length; i += 250) assert.equal((await app.send('/v1/batch', { batch: traffic.slice(i, i + 250) })).statusCode, 200);
  await app.stores.stage!.caughtUp();

  const profileOf = (key: string) => {
    const i = key.indexOf(':');
    return app.stores.profiles.profileOf('default', { type: key.slice(0, i), value: key.slice(i + 1) });
  };
  // Every person-specific identifier was seen with its user id, so each person is exactly one profile.
  const personProfile = new Map<number, string>();
  const personsOnProfile = new Map<string, Set<number>>();
  for (const [key, person] of owner) {
    const profile = profileOf(key);
    assert.ok(profile, `${key} was resolved`);
    const expected = personProfile.get(person) ?? profile;
    personProfile.set(person, expected);
    assert.equal(profile, expected, `missed link: ${key} is not on person ${person}'s profile`);
    personsOnProfile.set(profile, (personsOnProfile.get(profile) ?? new Set()).add(person));
  }
  for (const [profile, persons] of personsOnProfile) assert.equal(persons.size, 1, `wrong merge: ${profile} holds persons ${[...persons]}`);
  // Shared tablets sit on at most one profile each, and no junk value was linked at all.
  for (const key of shared) {
    const profile = profileOf(key);
    if (profile) assert.equal(personsOnProfile.get(profile)?.size ?? 0, 1);
  }
  for (const junk of ['undefined', 'null', '[object Object]', '0', 'anonymous']) {
    for (const type of ['user_id', 'anonymous_id', 'email']) assert.equal(profileOf(`${type}:${junk}`), undefined, `${type}:${junk} linked`);
  }
  assert.equal(personProfile.size, 400);
});
