import type { Identifier } from '../identity/identifiers.ts';
import type { GraphView, IdentityRules, Warning } from '../identity/merge-policy.ts';
import type { Audience, Needs } from '../audiences/definition.ts';
import type { ComputedTrait } from './computed-traits.ts';

/** Where an identifier, trait or merge came from: the event and the rule. */
export type Provenance = { eventId: string; messageId: string; rule: string; at: number };

/** A new or changed audience being built in the background: scan the log, then every profile. */
export type Backfill = {
  workspaceId: string;
  audienceKey: string;
  /** Where the scan of profile events is (JSON of a ProfileEventCursor), or null when it reads the log. */
  eventCursor: string | null;
  /** `events`: hidden event traits are filled from the log; `profiles`: every profile is evaluated. */
  phase: 'events' | 'profiles' | 'done';
  /** The hidden computed traits the log scan fills. */
  traits: string[];
  /** The log record that defined the audience: the scan covers records before it. */
  upTo: number;
  logAfter: number;
  profileAfter: string;
  profilesTotal: number;
  profilesDone: number;
  entered: number;
  exited: number;
  /** The admin event that defined the audience: the cause of the entries and exits. */
  cause: string;
  startedAt: number;
  finishedAt: number | null;
};

export type Column = { ids: string[]; values: unknown[] };
export type ProfileEventCursor = [profileId: string, timestamp: number, eventId: string];

/** What evaluating some definitions reads about a run of profiles (see Needs), by key then profile. */
export type ProfileChunk = {
  /** Per key, the profiles that have it in id order, and their values. */
  values: Map<string, Column>;
  members: Map<string, Set<string>>;
  consents: Map<string, Map<string, boolean>>;
  accounts: Map<string, Map<string, unknown[]>>;
};

/**
 * Every live profile of a workspace with the columns some definitions read, kept in memory:
 * profiles by slot (`live[slot]` false for those merged away since), values by key and slot.
 */
export type ProfileColumnsView = {
  ids: readonly string[];
  live: readonly boolean[];
  slotOf(profileId: string): number | undefined;
  value(key: string, slot: number): unknown;
  member(audienceKey: string, slot: number): boolean;
  consent(purpose: string, slot: number): boolean | undefined;
  account(key: string, slot: number): unknown[];
};

/** A stored lifetime-value fit: what was asked, what came out (see src/value). */
export type StoredFit = { id: string; workspaceId: string; createdAt: number; fit: Record<string, unknown> };

/** Scoring every profile with a fit, in the background. */
export type ValueJob = { workspaceId: string; fitId: string; profileAfter: string; scored: number; profilesDone: number; profilesTotal: number; scoredAt: number; startedAt: number; finishedAt: number | null };

/** What the profile stage writes; one adapter per store (SQLite now). */
export interface ProfileWriter {
  transaction(fn: () => void): void;
  graph(workspaceId: string): GraphView;
  rules(workspaceId: string): IdentityRules;
  createProfile(workspaceId: string, at: number): string;
  link(workspaceId: string, profileId: string, id: Identifier, why: Provenance): void;
  merge(workspaceId: string, from: string, into: string, via: Identifier, why: Provenance): void;
  setTraits(workspaceId: string, profileId: string, traits: Record<string, unknown>, timestamp: number, why: Provenance): void;
  /** Consent per purpose, last write wins by event timestamp. Returns the purposes whose value changed. */
  setConsents(profileId: string, preferences: Record<string, boolean>, timestamp: number, messageId: string): string[];
  /** An event of the profile, with what backfills of event conditions read: type, name, properties (JSON). */
  addEvent(profileId: string, timestamp: number, eventId: string, type: string, name: string | null, properties: string | null): void;
  /** Whether some profile events predate stored names and properties (backfills then read the log). */
  hasUntypedEvents(): boolean;
  /** Profile events named one of `names`, in (profile, time, event) order after a cursor. */
  profileEventsAfter(workspaceId: string, names: string[], after: ProfileEventCursor, limit: number): Array<{ profileId: string; timestamp: number; eventId: string; type: string; name: string; properties: string | null }>;
  warn(workspaceId: string, eventId: string, profileId: string, warnings: Warning[]): void;
  /** Moves one identifier to another profile and pins it there (an administrator's split). */
  moveIdentifier(workspaceId: string, id: Identifier, to: string): void;
  /** Moves one event, and the trait history it wrote, to another profile. */
  moveEvent(eventId: string, from: string, to: string): void;
  /** Recomputes a profile's traits from its trait history (last write wins). */
  recomputeTraits(profileId: string): void;
  recordSplit(workspaceId: string, from: string, to: string, id: Identifier, movedEvents: number, why: Provenance): void;
  setRules(workspaceId: string, rules: IdentityRules): void;
  defineComputedTrait(workspaceId: string, trait: ComputedTrait, at: number): void;
  deleteComputedTrait(workspaceId: string, key: string): void;
  /** One event's contribution to a trait; a second one for the same event and trait is ignored. */
  addContribution(workspaceId: string, profileId: string, trait: ComputedTrait, timestamp: number, eventId: string, value: unknown): void;
  /** A count trait's value plus one, when the contribution at `timestamp` is inside its window. */
  incrementCount(profileId: string, trait: ComputedTrait, timestamp: number, now: number): void;
  /** Recomputes one computed trait of one profile from its contributions inside the window. */
  recompute(profileId: string, trait: ComputedTrait, now: number): void;
  /** Drops contributions that left their window; returns the profiles and traits that lost some. */
  expire(workspaceId: string, traits: ComputedTrait[], now: number): Array<{ profileId: string; keys: string[] }>;
  /** The profile an event was attributed to. */
  profileOfEvent(eventId: string): string | undefined;
  workspaces(): string[];
  defineAudience(workspaceId: string, audience: Audience, at: number): void;
  deleteAudience(workspaceId: string, key: string): void;
  /** Records an entry or exit (with its time and cause); returns what changed, if anything. */
  setMembership(workspaceId: string, key: string, profileId: string, member: boolean, at: number, eventId: string, was?: boolean): 'enter' | 'exit' | null;
  /** Runs `fn` and undoes everything it wrote, returning what it computed (previews). */
  tentatively<T>(fn: () => T): T;
  savePreview(workspaceId: string, id: string, result: unknown, at: number): void;
  /** Up to `limit` live profiles after `after`, in id order. */
  liveProfilesAfter(workspaceId: string, after: string, limit: number): string[];
  /** What `needs` reads about the profiles `ids` (sorted, from liveProfilesAfter). */
  profileChunk(workspaceId: string, needs: Needs, ids: string[]): ProfileChunk;
  /** The workspace's live profiles with what `needs` reads, from columns kept in memory (loaded now if missing); undefined for a store or workspace that keeps none. */
  profileColumns(workspaceId: string, needs: Needs): ProfileColumnsView | undefined;
  /** Reads again up to `limit` kept entries that writes changed; how many it read. */
  refreshColumns(limit: number): number;
  /** Loads one slice (tens of thousands of profiles) of the columns `needs` reads; whether there was any to load (never, for a store that keeps none). */
  warmColumns(workspaceId: string, needs: Needs): boolean;
  /** Whether the columns `needs` reads are kept in memory, so reading them loads nothing (never, for a store that keeps none). */
  columnsLoaded(workspaceId: string, needs: Needs): boolean;
  /** Sets count traits from their contributions for profiles with ids in [from, to]. */
  recountRange(trait: ComputedTrait, from: string, to: string, now: number): void;
  profileCount(workspaceId: string): number;
  saveBackfill(backfill: Backfill): void;
  deleteBackfill(workspaceId: string, audienceKey: string): void;
  /** Backfills not yet done, oldest first. */
  pendingBackfills(): Backfill[];
  saveFit(fit: StoredFit): void;
  saveValueJob(job: ValueJob): void;
  pendingValueJobs(): ValueJob[];
  /** The contributions of some traits for profiles with ids in [from, to]: purchases for scoring. */
  contributionsInRange(keys: string[], from: string, to: string): Array<{ profileId: string; timestamp: number; value: number }>;
  setComputedValue(profileId: string, key: string, value: unknown, at: number): void;
  dropComputedValue(profileId: string, key: string): void;
  upsertAccount(workspaceId: string, groupId: string, traits: Record<string, unknown>, timestamp: number, why: Provenance): void;
  linkAccount(workspaceId: string, groupId: string, profileId: string, why: Provenance): void;
  checkpoint(): number;
  setCheckpoint(logId: number): void;
}

export type TraitValue = { value: unknown; timestamp: number; messageId: string };

/** What the Profile API and the admin API read. */
export interface ProfileReader {
  profileOf(workspaceId: string, id: Identifier): string | undefined;
  metadata(profileId: string): { workspaceId: string; createdAt: number; updatedAt: number } | undefined;
  /** Custom and computed trait values in one read (computed win on a name clash). */
  traitValues(profileId: string): Record<string, unknown>;
  /** The same, looked up by identifier in one read: the Profile API's hot path. */
  traitValuesOf(workspaceId: string, id: Identifier): { profileId: string; values: Record<string, unknown> } | undefined;
  traits(profileId: string): Record<string, TraitValue>;
  identifiers(profileId: string): Array<Identifier & { eventId: string; messageId: string; rule: string; createdAt: number }>;
  /** Event ids, newest first, strictly older than the cursor (timestamp, eventId). */
  events(profileId: string, limit: number, before?: { timestamp: number; eventId: string }): Array<{ timestamp: number; eventId: string }>;
  merges(profileId: string): Array<{ from: string; into: string; via: Identifier; eventId: string; rule: string; at: number }>;
  splits(profileId: string): Array<{ from: string; to: string; id: Identifier; eventId: string; movedEvents: number; at: number }>;
  warnings(profileId: string): Array<{ eventId: string; warning: Warning }>;
  rules(workspaceId: string): IdentityRules;
  computedTraits(workspaceId: string): ComputedTrait[];
  computedValues(profileId: string): Record<string, unknown>;
  /** Computed values including the hidden ones behind audience event conditions. */
  allComputedValues(profileId: string): Record<string, unknown>;
  audiences(workspaceId: string): Audience[];
  memberships(profileId: string): string[];
  audienceMembers(workspaceId: string, key: string): string[];
  /** The id of the newest entry or exit of any audience (0 before the first). */
  lastAudienceChange(): number;
  /** The id of the newest entry or exit of one audience (0 before the first). */
  audienceLastChange(workspaceId: string, key: string): number;
  /** Members after `afterProfile` (id order) with no entry or exit after `change`: those an activation made then sends first. */
  membersUnchangedSince(workspaceId: string, key: string, change: number, afterProfile: string, limit: number): string[];
  consents(profileId: string): Record<string, boolean>;
  /** Changes of consent (any profile, any purpose) after a cursor (their id), in order. */
  consentChanges(after: number, limit: number): Array<{ id: number; profileId: string; purpose: string; granted: boolean; at: number }>;
  /** The id of the newest consent change (0 before the first). */
  lastConsentChange(): number;
  /** One trait's values over the accounts the profile is linked to (those that have it). */
  accountValues(profileId: string, key: string): unknown[];
  backfill(workspaceId: string, audienceKey: string): Backfill | undefined;
  fits(workspaceId: string, limit: number): StoredFit[];
  /** Workspaces that have a lifetime-value fit. */
  fitWorkspaces(): string[];
  fit(workspaceId: string, id: string): StoredFit | undefined;
  valueJob(workspaceId: string): ValueJob | undefined;
  /** A workspace's contributions to some traits: every purchase, for fitting. */
  contributions(workspaceId: string, keys: string[]): Array<{ profileId: string; timestamp: number; value: number }>;
  /** Some computed values of profiles after a cursor, in profile id order (scores, for listing). */
  computedValuesAfter(keys: string[], after: string, limit: number): Array<{ profileId: string; values: Record<string, unknown> }>;
  /** Entries and exits of every audience (or one) in the order they happened, after a cursor (their id). */
  audienceChanges(workspaceId: string, after: number, limit: number, key?: string): Array<{ id: number; key: string; profileId: string; change: 'enter' | 'exit'; at: number; eventId: string }>;
  /** The live profile a profile is now part of: itself, or the one it was merged into. */
  liveProfileOf(profileId: string): string | undefined;
  audienceSize(workspaceId: string, key: string): number;
  preview(workspaceId: string, id: string): unknown;
  profileAudienceHistory(profileId: string, limit: number): Array<{ key: string; change: 'enter' | 'exit'; at: number; eventId: string }>;
  /** Audience size at the end of each bucket in which it changed. */
  audienceSizes(workspaceId: string, key: string, bucketMs: number): Array<{ at: number; size: number }>;
  audienceHistory(workspaceId: string, key: string, limit: number): Array<{ profileId: string; change: 'enter' | 'exit'; at: number; eventId: string }>;
  account(workspaceId: string, groupId: string): { traits: Record<string, TraitValue>; createdAt: number; updatedAt: number } | undefined;
  accountLinks(workspaceId: string, groupId: string): string[];
  checkpoint(): number;
}
