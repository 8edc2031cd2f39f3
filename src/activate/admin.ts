import { TandemError } from '../errors.ts';
import { settingsOf } from '../governance/changes.ts';
import { namedPii } from '../governance/pii.ts';
import type { ProfileReader } from '../profiles/ports.ts';
import type { AccessStore, Activation, ActivationStore, Destination } from '../store/ports.ts';
import { BlockedDestination, checkUrl, newSecret, type AllowList } from './webhook.ts';

export type DestinationInput = { name: string; url: string; purposes?: string[]; consentMode?: Destination['consentMode']; enabled?: boolean };
export type ActivationInput = { destination: string; audience: string; traits?: string[]; identifiers?: string[]; sync?: 'members' | 'changes' };

const KEY = '^[A-Za-z][A-Za-z0-9_.:-]{0,63}$';
/** JSON Schemas of what creates a destination and an activation (routes and change requests share them). */
export const DESTINATION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'url'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    url: { type: 'string', minLength: 1, maxLength: 2000 },
    purposes: { type: 'array', maxItems: 20, uniqueItems: true, items: { type: 'string', pattern: KEY } },
    consentMode: { enum: ['opt_in', 'opt_out'] },
    enabled: { type: 'boolean' },
  },
} as const;
export const ACTIVATION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['destination', 'audience'],
  properties: {
    destination: { type: 'string', minLength: 1, maxLength: 200 },
    audience: { type: 'string', minLength: 1, maxLength: 64 },
    traits: { type: 'array', maxItems: 100, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 200 } },
    identifiers: { type: 'array', maxItems: 20, uniqueItems: true, items: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,63}$' } },
    sync: { enum: ['members', 'changes'] },
  },
} as const;

/** What `PATCH /api/v1/activations/:id` and `activation_fields` change requests may change. */
export const ACTIVATION_FIELDS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { traits: ACTIVATION_SCHEMA.properties.traits, identifiers: ACTIVATION_SCHEMA.properties.identifiers },
} as const;
export type ActivationFields = { traits?: string[]; identifiers?: string[] };

/** Identifier types a delivery carries when the activation names none. */
export const DEFAULT_IDENTIFIERS = ['user_id', 'anonymous_id'];
/** What an activation that does not exist yet sends: nothing. */
export const NO_FIELDS: Required<ActivationFields> = { traits: [], identifiers: [] };
/** The fields an activation's input sends (identifier types by default). */
export const fieldsOf = (input: ActivationFields): Required<ActivationFields> => ({ traits: input.traits ?? [], identifiers: input.identifiers ?? DEFAULT_IDENTIFIERS });

/**
 * Destinations and activations as the admin API and approved change requests make them: URLs
 * checked by the SSRF guard, audiences and destinations checked to exist, personal data named.
 */
export function createActivationAdmin(deps: { store: ActivationStore; profiles: ProfileReader; access: AccessStore; allow: AllowList; now: () => number }) {
  const { store, profiles } = deps;

  function checkedUrl(url: string): string {
    try {
      return checkUrl(url, deps.allow).toString();
    } catch (err) {
      if (err instanceof BlockedDestination) throw new TandemError('invalid_destination', err.message);
      throw err;
    }
  }

  const destinationNamed = (workspaceId: string, name: string) => store.destinations(workspaceId).find((d) => d.name === name);
  /** The destination an activation names, by id or by name. */
  function destinationOf(workspaceId: string, ref: string): Destination {
    const d = store.destination(workspaceId, ref) ?? destinationNamed(workspaceId, ref);
    if (!d) throw new TandemError('not_found', `No destination ${JSON.stringify(ref)}.`);
    return d;
  }

  return {
    checkedUrl,
    destinationNamed,
    destinationOf,
    createDestination(workspaceId: string, input: DestinationInput, by: string): Destination {
      const url = checkedUrl(input.url);
      if (destinationNamed(workspaceId, input.name)) throw new TandemError('already_exists', `A destination named ${JSON.stringify(input.name)} exists already.`);
      const d: Destination = {
        id: `dst_${crypto.randomUUID()}`, workspaceId, name: input.name, url, secret: newSecret(), purposes: input.purposes ?? [], consentMode: input.consentMode ?? 'opt_in',
        enabled: input.enabled ?? true, createdAt: deps.now(), createdBy: by,
      };
      store.saveDestination(d);
      return d;
    },
    /** The personal data an activation would send: traits and identifier types, each with its kind. */
    piiOf(workspaceId: string, input: Pick<ActivationInput, 'traits' | 'identifiers'>): string[] {
      const pii = namedPii(deps.access, workspaceId);
      const out: string[] = [];
      for (const t of input.traits ?? []) {
        const kind = pii.trait(t);
        if (kind) out.push(`traits.${t} (${kind})`);
      }
      for (const i of input.identifiers ?? DEFAULT_IDENTIFIERS) {
        const kind = pii.identifier(i);
        if (kind) out.push(`identifiers.${i} (${kind})`);
      }
      return out;
    },
    /** The personal data a change of an activation's fields would start sending (not sent before). */
    piiAdded(workspaceId: string, from: ActivationFields, to: ActivationFields): string[] {
      const before = new Set(this.piiOf(workspaceId, from));
      return this.piiOf(workspaceId, to).filter((p) => !before.has(p));
    },
    /**
     * The personal data a change of an activation's fields (from nothing, for a new one) starts
     * sending, when the workspace wants that reviewed; [] when it adds none or no review is wanted.
     */
    reviewedPii(workspaceId: string, from: ActivationFields, to: ActivationFields): string[] {
      return settingsOf(deps.access, workspaceId).approvalRequired.pii_to_destination ? this.piiAdded(workspaceId, from, to) : [];
    },
    setFields(workspaceId: string, a: Activation, fields: ActivationFields): Activation {
      const next = { ...a, traits: fields.traits ?? a.traits, identifiers: fields.identifiers ?? a.identifiers };
      if (!store.setActivationFields(workspaceId, a.id, next)) throw new TandemError('not_found');
      return next;
    },
    createActivation(workspaceId: string, input: ActivationInput, by: string): Activation {
      const destination = destinationOf(workspaceId, input.destination);
      if (!profiles.audiences(workspaceId).some((a) => a.key === input.audience)) throw new TandemError('not_found', `No audience ${JSON.stringify(input.audience)}.`);
      if (store.activations(workspaceId).some((a) => a.destinationId === destination.id && a.audienceKey === input.audience)) {
        throw new TandemError('already_exists', `${input.audience} is sent to ${destination.name} already.`);
      }
      // `members`: everyone in the audience now enters first (queued in the background, a page at a
      // time); `changes`: only what happens from now on.
      const now = deps.now();
      const last = profiles.audienceLastChange(workspaceId, input.audience);
      const a: Activation = {
        id: `act_${crypto.randomUUID()}`, workspaceId, destinationId: destination.id, audienceKey: input.audience, ...fieldsOf(input),
        after: last, syncAfter: (input.sync ?? 'members') === 'members' ? '' : null, syncChange: last, createdAt: now, createdBy: by,
      };
      store.createActivation(a);
      return a;
    },
  };
}
export type ActivationAdmin = ReturnType<typeof createActivationAdmin>;
