import { TandemError } from '../errors.ts';
import { normalizeEmail, normalizePhone, type Identifier } from '../identity/identifiers.ts';
import type { ProfileReader } from './ports.ts';

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

/**
 * The live profile an identifier (or `profile_id:…`) names in a workspace. Identifiers only ever
 * point at live profiles of their own workspace; a profile id is checked against the workspace.
 */
export function profileByRef(profiles: Pick<ProfileReader, 'metadata' | 'profileOf'>, workspaceId: string, id: Identifier): string | undefined {
  if (id.type === 'profile_id') return profiles.metadata(id.value)?.workspaceId === workspaceId ? id.value : undefined;
  return profiles.profileOf(workspaceId, id);
}
