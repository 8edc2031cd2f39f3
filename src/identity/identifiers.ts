import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { isBlockedIdentifier } from './blocked-values.ts';
import { isObject, type Json } from '../json.ts';

/** `user_id`, `anonymous_id`, `email`, `phone`, or a custom type from `context.externalIds`. */
export type Identifier = { type: string; value: string };

/** The type `alias` gives its previousId until resolution knows whether it is a user or an anonymous id. */
export const PREVIOUS_ID = 'previous_id';
export type Rejected = Identifier & { reason: 'blocked_value' | 'invalid_email' | 'too_long' };

const MAX_LENGTH = 1024;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function normalizeEmail(value: string): string | undefined {
  const email = value.trim().toLowerCase();
  return EMAIL.test(email) ? email : undefined;
}

/** E.164 when the number parses (with a leading + or a country hint); otherwise trimmed as given. */
export function normalizePhone(value: string, country?: string): string {
  const phone = parsePhoneNumberFromString(value.trim(), country ? { defaultCountry: country as never } : undefined);
  return phone?.isValid() ? phone.number : value.trim();
}

const asString = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);

/**
 * The person identifiers one event carries, normalised, with the values that must never link
 * anything set aside with their reason. `group_id` is an account identifier, not a person's.
 */
export function extractIdentifiers(event: Json, blocked: (type: string, value: string) => boolean = () => false): { ids: Identifier[]; rejected: Rejected[] } {
  const ids: Identifier[] = [];
  const rejected: Rejected[] = [];
  const add = (type: string, raw: unknown) => {
    const value = asString(raw);
    if (value === undefined || value.trim() === '') return;
    if (value.length > MAX_LENGTH) return void rejected.push({ type, value: value.slice(0, 64), reason: 'too_long' });
    let normal = value;
    if (type === 'email') {
      const email = normalizeEmail(value);
      if (!email) return void rejected.push({ type, value, reason: isBlockedIdentifier(value) ? 'blocked_value' : 'invalid_email' });
      normal = email;
    } else if (type === 'phone') normal = normalizePhone(value);
    if (isBlockedIdentifier(normal) || blocked(type, normal)) return void rejected.push({ type, value: normal, reason: 'blocked_value' });
    if (!ids.some((i) => i.type === type && i.value === normal)) ids.push({ type, value: normal });
  };
  add('user_id', event.userId);
  // alias: previousId is an anonymous id or an earlier user id; resolution decides which.
  if (event.type === 'alias') add(PREVIOUS_ID, event.previousId);
  add('anonymous_id', event.anonymousId);
  const context = isObject(event.context) ? event.context : {};
  for (const traits of [event.type === 'identify' && isObject(event.traits) ? event.traits : undefined, isObject(context.traits) ? context.traits : undefined]) {
    if (!traits) continue;
    add('email', traits.email);
    add('phone', traits.phone);
  }
  if (Array.isArray(context.externalIds)) {
    for (const ext of context.externalIds) {
      if (!isObject(ext) || typeof ext.type !== 'string' || (ext.collection !== undefined && ext.collection !== 'users')) continue;
      const type = ext.type.trim().toLowerCase();
      if (/^[a-z][a-z0-9_]{0,63}$/.test(type) && type !== 'group_id') add(type, ext.id);
    }
  }
  return { ids, rejected };
}
