import { isObject, type Json } from '../json.ts';
import type { AccessStore, Token } from '../store/ports.ts';

/**
 * PII classification and masking. A field is personal data when the tracking plan tags it
 * (`"x-pii": "email"`, or any custom kind, on a property's schema), when its name says so
 * (email, phone, first_name, address, ip, …; `name` only among traits, where it is a person's),
 * or when its value looks like an email address, a phone number or an IP address. Callers
 * without the `pii` permission get every such value masked, in every API that reads them.
 */
export type PiiKind = string;

const BY_NAME: Record<string, PiiKind> = {};
for (const [kind, names] of Object.entries({
  email: ['email', 'emailaddress', 'mail', 'email_address'],
  phone: ['phone', 'phonenumber', 'mobile', 'mobilephone', 'mobilenumber', 'tel', 'telephone', 'cellphone'],
  name: ['firstname', 'lastname', 'fullname', 'givenname', 'familyname', 'surname', 'middlename', 'displayname'],
  address: ['address', 'street', 'streetaddress', 'addressline1', 'addressline2', 'postalcode', 'zip', 'zipcode', 'postcode'],
  ip: ['ip', 'ipaddress', 'clientip'],
  birthdate: ['birthday', 'birthdate', 'dateofbirth', 'dob'],
})) for (const n of names) BY_NAME[n.replace(/[^a-z0-9]/g, '')] = kind;

const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]{2,}$/;
const PHONE = /^\+?[\d\s().-]{7,24}$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/;
const IPV6 = /^[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}$/i;

/** The kind of personal data a field holds, if any. */
export function classify(key: string, value: unknown, among: 'traits' | 'properties', tagged?: Map<string, PiiKind>): PiiKind | undefined {
  const tag = tagged?.get(key);
  if (tag) return tag;
  const normal = key.toLowerCase().replace(/[^a-z0-9]/g, '');
  const byName = BY_NAME[normal] ?? (among === 'traits' && normal === 'name' ? 'name' : undefined);
  if (byName) return byName;
  if (typeof value !== 'string') return undefined;
  if (EMAIL.test(value)) return 'email';
  if (IPV4.test(value) || (value.includes(':') && IPV6.test(value))) return 'ip';
  if (PHONE.test(value) && (value.match(/\d/g)?.length ?? 0) >= 8) return 'phone';
  return undefined;
}

/** A masked stand-in that keeps what helps to recognise a value without revealing it. */
export function mask(value: unknown, kind: PiiKind): unknown {
  if (value === null || value === undefined) return value;
  if (Array.isArray(value)) return value.map((v) => mask(v, kind));
  if (isObject(value)) return maskObject(value, 'traits', undefined, true);
  const s = String(value);
  switch (kind) {
    case 'email': {
      const at = s.lastIndexOf('@');
      return at > 0 ? `${s[0]}***${s.slice(at)}` : '***';
    }
    case 'phone':
      return `***${s.replace(/\D/g, '').slice(-2)}`;
    case 'name':
      return `${s[0] ?? ''}***`;
    case 'ip': {
      const v4 = IPV4.exec(s);
      return v4 ? `${v4[1]}.${v4[2]}.x.x` : `${s.split(':')[0]}:***`;
    }
    default:
      return '***';
  }
}

/** A copy of an object with its personal data masked, nested objects and arrays included. */
export function maskObject(obj: Json, among: 'traits' | 'properties', tagged?: Map<string, PiiKind>, all = false): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(obj)) {
    const kind = all ? 'custom' : classify(key, value, among, tagged);
    if (kind) out[key] = mask(value, kind);
    else if (isObject(value)) out[key] = maskObject(value, among, tagged);
    else if (Array.isArray(value)) {
      out[key] = value.map((v) => {
        if (isObject(v)) return maskObject(v, among, tagged);
        const itemKind = typeof v === 'string' ? classify(key, v, among, tagged) : undefined;
        return itemKind ? mask(v, itemKind) : v;
      });
    }
    else out[key] = value;
  }
  return out;
}

/** What one caller sees: everything when they hold `pii`, masked values otherwise. */
export type Masker = {
  readonly masks: boolean;
  traits(traits: Json): Json;
  /** Event properties, or an account's traits (where `name` is a company's, not a person's). */
  properties(properties: Json): Json;
  /** An event payload: properties, traits, context (its traits and ip), and identifiers that look personal. */
  event(payload: Json): Json;
  identifier(type: string, value: string): string;
};

const NONE: Masker = { masks: false, traits: (t) => t, properties: (p) => p, event: (p) => p, identifier: (_t, v) => v };

/** Maskers per caller, with the tags of each workspace's tracking plans (read again when plans change). */
export function createPiiPolicy(access: AccessStore) {
  let version = -1;
  const tags = new Map<string, Map<string, PiiKind>>();
  const tagsOf = (workspaceId: string): Map<string, PiiKind> => {
    const v = access.version();
    if (v !== version) {
      version = v;
      tags.clear();
    }
    let t = tags.get(workspaceId);
    if (!t) tags.set(workspaceId, (t = collectTags(access, workspaceId)));
    return t;
  };
  return function maskerFor(token: Token): Masker {
    if (token.pii) return NONE;
    const tagged = tagsOf(token.workspaceId);
    const maskString = (key: string, value: unknown, among: 'traits' | 'properties') => {
      const kind = classify(key, value, among, tagged);
      return kind ? mask(value, kind) : value;
    };
    return {
      masks: true,
      traits: (traits) => maskObject(traits, 'traits', tagged),
      properties: (properties) => maskObject(properties, 'properties', tagged),
      event(payload) {
        const out: Json = { ...payload };
        for (const field of ['userId', 'anonymousId', 'previousId', 'groupId'] as const) if (typeof out[field] === 'string') out[field] = maskString(field, out[field], 'properties');
        if (isObject(out.properties)) out.properties = maskObject(out.properties, 'properties', tagged);
        if (isObject(out.traits)) out.traits = maskObject(out.traits, 'traits', tagged);
        if (isObject(out.context)) {
          const context: Json = maskObject(out.context, 'properties', tagged);
          if (isObject(out.context.traits)) context.traits = maskObject(out.context.traits, 'traits', tagged);
          out.context = context;
        }
        return out;
      },
      identifier: (type, value) => {
        const kind = BY_NAME[type.replace(/[^a-z0-9]/gi, '').toLowerCase()] ?? classify(type, value, 'properties', tagged);
        return kind ? String(mask(value, kind)) : value;
      },
    };
  };
}
export type PiiPolicy = ReturnType<typeof createPiiPolicy>;

/** Properties tagged `x-pii` in any of the workspace's plans (latest versions), by property name. */
function collectTags(access: AccessStore, workspaceId: string): Map<string, PiiKind> {
  const out = new Map<string, PiiKind>();
  const walk = (schema: unknown): void => {
    if (!isObject(schema)) return;
    if (isObject(schema.properties)) {
      for (const [name, sub] of Object.entries(schema.properties)) {
        if (isObject(sub) && typeof sub['x-pii'] === 'string') out.set(name, sub['x-pii']);
        walk(sub);
      }
    }
    if (isObject(schema.items)) walk(schema.items);
  };
  for (const plan of access.plans(workspaceId)) {
    const d = JSON.parse(plan.definition) as Record<string, unknown>;
    for (const group of ['events', 'pages', 'screens'] as const) if (isObject(d[group])) Object.values(d[group]).forEach(walk);
    walk(d.identify);
    walk(d.group);
  }
  return out;
}

/**
 * The personal data a trait or an identifier type holds by its name or a plan's tag, values unseen:
 * what choosing fields to send somewhere (an activation) reveals before anything is sent.
 */
export function namedPii(access: AccessStore, workspaceId: string) {
  const tagged = collectTags(access, workspaceId);
  return {
    trait: (key: string): PiiKind | undefined => classify(key, undefined, 'traits', tagged),
    identifier: (type: string): PiiKind | undefined => BY_NAME[type.replace(/[^a-z0-9]/gi, '').toLowerCase()] ?? classify(type, undefined, 'properties', tagged),
  };
}
