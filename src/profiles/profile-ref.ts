import { TandemError } from '../errors.ts';
import { normalizeEmail, normalizePhone, type Identifier } from '../identity/identifiers.ts';

/** `type:value`, split at the first colon; emails and phones are looked up normalised. */
export function parseProfileId(raw: string): Identifier {
  const i = raw.indexOf(':');
  if (i <= 0 || i === raw.length - 1) throw new TandemError('invalid_request', 'The profile id must look like user_id:123 or email:a@b.c.');
  const type = raw.slice(0, i).toLowerCase();
  let value = raw.slice(i + 1);
  if (type === 'email') value = normalizeEmail(value) ?? value;
  else if (type === 'phone') value = normalizePhone(value);
  return { type, value };
}
