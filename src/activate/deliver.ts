import { eventId, expandRecord, type StoredEvent } from '../ingest/event-view.ts';
import { isObject } from '../json.ts';
import type { ProfileReader } from '../profiles/ports.ts';
import { consentOf } from '../profiles/stage.ts';
import { decodeMeta, type EventMeta } from '../store/event-meta.ts';
import type { Activation, ActivationStore, Delivery, DeliveryChange, DeliveryStatus, DeliveryUpdate, Destination, EventLog, EventStream, QueuedDelivery } from '../store/ports.ts';
import { signature, type Poster } from './webhook.ts';

export type DeliveryOutcome = 'delivered' | 'retried' | 'dead' | 'suppressed' | 'skipped' | 'cancelled';

export type DelivererOptions = {
  store: ActivationStore;
  profiles: Pick<
    ProfileReader,
    'audienceChanges' | 'lastAudienceChange' | 'membersUnchangedSince' | 'liveProfileOf' | 'consents' | 'consentChanges' | 'lastConsentChange' | 'metadata' | 'memberships' | 'traitValues' | 'identifiers' | 'audiences' | 'checkpoint' | 'profileOf'
  >;
  /** The event log, for event streams. */
  log: Pick<EventLog, 'readVerdictsForward' | 'get'>;
  poster: Poster;
  /** Attempts before a delivery is dead (a permanent refusal is dead at once). */
  maxAttempts: number;
  /** The first retry's delay; each next one doubles it, up to an hour, with jitter. */
  retryBaseMs: number;
  /** Requests in flight per destination. */
  perDestination: number;
  now?: () => number;
  onOutcome?: (outcome: DeliveryOutcome) => void;
  onError?: (err: unknown) => void;
};

const HOUR = 3_600_000;
/** How often the queue is filled from the feeds and due deliveries are started (also whenever an attempt ends). */
const TURN_MS = 20;
/** Audience changes read per activation and turn. */
const CHANGES_PER_TURN = 1000;
/** The feed of consent changes, in the store's cursors. */
const CONSENT = 'consent';
/** Due deliveries read at once per destination. */
const READ_AHEAD = 256;
/** Log records an event stream reads per turn. */
const RECORDS_PER_TURN = 200;
/** Log records whose parsed events are kept for event deliveries. */
const PARSED_RECORDS = 32;
/** Members an activation's first sync queues per turn (~6 ms of inserts at the 12.7 µs a row measured on the store alone). */
const SYNC_PAGE = 500;

/** Whether a profile's consents let a destination receive it. */
export function consented(destination: Pick<Destination, 'purposes' | 'consentMode'>, consents: Record<string, boolean>): boolean {
  return destination.purposes.every((p) => (destination.consentMode === 'opt_in' ? consents[p] === true : consents[p] !== false));
}

/** Whether an event stream forwards an event: accepted or flagged, of a type it wants, and for track calls a name it wants. */
export function streamWants(stream: Pick<EventStream, 'types' | 'events'>, v: EventMeta): boolean {
  if (v.status !== 'accepted' && v.status !== 'flagged') return false;
  if (stream.types.length > 0 && !stream.types.includes(v.type)) return false;
  return v.type !== 'track' || stream.events.length === 0 || (v.event !== undefined && stream.events.includes(v.event));
}

/** An HTTP status the receiver may answer differently later (else the delivery is dead at once). */
const retryable = (status: number) => status === 408 || status === 425 || status === 429 || status >= 500;

/**
 * Turns audience entries and exits, and the events of event streams, into webhook deliveries and
 * sends them: at least once, in order per profile (per identity, for events) and destination,
 * signed, through the SSRF guard, with retries that back off and dead letters that can be sent
 * again. Entries and events wait for consent (`suppressed` without it); exits go to destinations
 * that received the entry. Runs on the server's main thread; its queue is durable, so a
 * restart resends what was in flight or not yet recorded (receivers deduplicate on `Tandem-Delivery`).
 *
 * Outcomes are written in batches, one transaction for all the attempts that ended since the last
 * one, so a commit (and its fsync) is shared by many deliveries.
 */
export class Deliverer {
  readonly #o: DelivererOptions;
  readonly #now: () => number;
  /** Deliveries being attempted, by destination: kept from being started twice. */
  readonly #inFlight = new Map<string, Set<number>>();
  readonly #running = new Set<Promise<void>>();
  /** Due deliveries read ahead, by destination (each the oldest pending one of its profile there). */
  readonly #queued = new Map<string, Delivery[]>();
  #writes: Array<{ id: number; fields: DeliveryUpdate }> = [];
  #destinations = new Map<string, Destination>();
  #activations = new Map<string, Activation>();
  #streams = new Map<string, EventStream>();
  /** The events of the last log records read for event streams (a batch's events go out one by one; its body is parsed once). */
  readonly #records = new Map<string, StoredEvent[]>();
  /** The store's version of the destinations and activations cached here. */
  #version = -1;
  /** The newest consent change already followed (-1: read the store's cursor). */
  #consentSeen = -1;
  /** The newest audience change already queued everywhere (-1: look at every activation). */
  #queuedUpTo = -1;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #kicked = false;

  constructor(options: DelivererOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    this.#timer = setInterval(() => this.turn(), TURN_MS);
    this.#timer.unref();
  }

  /** One turn: queue new audience changes, then start the deliveries that are due (they run on). */
  turn(): void {
    if (this.#closed) return;
    try {
      this.#refresh();
      this.#enqueue();
      this.#send();
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  /** Resolves once nothing is in flight and every outcome is written (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running]);
    this.#flush();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.idle();
    this.#o.poster.close();
  }

  /** Reads destinations and activations again when the store says they changed. */
  #refresh(): void {
    const version = this.#o.store.version();
    if (version === this.#version) return;
    this.#version = version;
    this.#activations = new Map(this.#o.store.activations().map((a) => [a.id, a]));
    this.#destinations = new Map(this.#o.store.destinations().map((d) => [d.id, d]));
    this.#streams = new Map(this.#o.store.streams().map((e) => [e.id, e]));
    this.#queuedUpTo = -1;
  }

  #enqueue(): void {
    this.#enqueueAudienceChanges();
    this.#followConsent();
    this.#enqueueEvents();
  }

  /** Entries and exits of the activations' audiences, after each activation's position in the history. */
  #enqueueAudienceChanges(): void {
    // Nothing to read on this (the HTTP) thread every turn while no activation exists; a new one
    // makes #refresh look at every activation again.
    if (this.#activations.size === 0) return;
    const { store, profiles } = this.#o;
    // One cheap read when no audience changed since the last turn (and no first sync runs).
    const last = profiles.lastAudienceChange();
    const changed = last !== this.#queuedUpTo;
    let all = true;
    for (const cached of this.#activations.values()) {
      const a = cached.syncAfter === null ? cached : this.#syncPage(cached);
      if (!changed || a.after >= last) continue;
      const changes = profiles.audienceChanges(a.workspaceId, a.after, CHANGES_PER_TURN, a.audienceKey);
      if (changes.length === CHANGES_PER_TURN) all = false;
      if (changes.length === 0) continue;
      const upTo = changes.at(-1)!.id;
      // The cached activation moves with the store; if the store had moved or lost it, read them all again.
      if (store.enqueue(a, changes, upTo, this.#now())) this.#activations.set(a.id, { ...a, after: upTo });
      else this.#version = -1;
    }
    if (changed && all) this.#queuedUpTo = last;
  }

  /**
   * Consent changes: a destination holds a profile while it is in the audience and has given the
   * destination's purposes. A withdrawal sends an exit to destinations that have the profile; a
   * grant sends an entry to those that lack a member (say, its entry was suppressed).
   */
  #followConsent(): void {
    const { store, profiles } = this.#o;
    const last = profiles.lastConsentChange();
    if (last === this.#consentSeen) return;
    const from = store.cursor(CONSENT);
    const changes = last > from ? profiles.consentChanges(from, CHANGES_PER_TURN) : [];
    const items: Array<{ activation: Activation; change: DeliveryChange }> = [];
    const intends = new Map<string, boolean>();
    for (const c of changes) {
      const workspaceId = profiles.metadata(c.profileId)?.workspaceId;
      const profileId = profiles.liveProfileOf(c.profileId) ?? c.profileId;
      for (const a of this.#activations.values()) {
        const destination = this.#destinations.get(a.destinationId);
        if (a.workspaceId !== workspaceId || !destination?.purposes.includes(c.purpose)) continue;
        const should = profiles.memberships(profileId).includes(a.audienceKey) && consented(destination, profiles.consents(profileId));
        const key = `${a.id}|${profileId}`;
        const has = intends.get(key) ?? store.lastKind(a.id, profileId, true) === 'audience_entered';
        if (should === has) continue;
        intends.set(key, should);
        items.push({ activation: a, change: { profileId, change: should ? 'enter' : 'exit', at: c.at, eventId: `consent:${c.id}` } });
      }
    }
    if (changes.length === 0 || store.queueAtCursor(CONSENT, from, changes.at(-1)!.id, items, this.#now())) {
      if (changes.length < CHANGES_PER_TURN) this.#consentSeen = last;
    }
  }

  /**
   * Events for the event streams, from the log records the profile stage has applied (so the
   * consent and identity they carry are in the profiles by the time they are sent).
   */
  #enqueueEvents(): void {
    if (this.#streams.size === 0) return;
    const { store, profiles, log } = this.#o;
    const applied = profiles.checkpoint();
    for (const stream of this.#streams.values()) {
      if (stream.after >= applied) continue;
      const records = log.readVerdictsForward(stream.after, RECORDS_PER_TURN).filter((r) => r.id <= applied);
      if (records.length === 0) continue;
      const events: QueuedDelivery[] = [];
      for (const r of records) {
        if (r.workspaceId !== stream.workspaceId || r.kind === 'admin' || (stream.sourceId !== null && r.sourceId !== stream.sourceId)) continue;
        decodeMeta(r.meta).forEach((v, i) => {
          if (streamWants(stream, v)) events.push({ profileId: v.userId !== undefined ? `user_id:${v.userId}` : `anonymous_id:${v.anonymousId ?? ''}`, at: v.timestamp, eventId: eventId(r.id, i) });
        });
      }
      const upTo = records.at(-1)!.id;
      if (store.enqueueEvents(stream, events, upTo, this.#now())) this.#streams.set(stream.id, { ...stream, after: upTo });
      else this.#version = -1;
    }
  }

  /**
   * One page of an activation's first sync: members unchanged since it was made, as entries (the
   * others' changes come through the audience history). A page per turn keeps this thread free.
   */
  #syncPage(a: Activation): Activation {
    const { store, profiles } = this.#o;
    const ids = profiles.membersUnchangedSince(a.workspaceId, a.audienceKey, a.syncChange, a.syncAfter ?? '', SYNC_PAGE);
    const next = ids.length === SYNC_PAGE ? ids.at(-1)! : null;
    const now = this.#now();
    const entries = ids.map((profileId) => ({ profileId, change: 'enter' as const, at: now, eventId: `activation:${a.id}` }));
    if (!store.syncMembers(a, entries, next, now)) {
      this.#version = -1;
      return a;
    }
    const moved = { ...a, syncAfter: next };
    this.#activations.set(a.id, moved);
    return moved;
  }

  #flush(): void {
    if (this.#writes.length === 0) return;
    const writes = this.#writes;
    this.#writes = [];
    this.#o.store.updateDeliveries(writes);
  }

  #send(): void {
    const { store, perDestination } = this.#o;
    // Outcomes first: a profile's next delivery waits until the one before it is recorded.
    this.#flush();
    // A delivery's activation is known here whenever the delivery is (they are made together).
    this.#refresh();
    const now = this.#now();
    for (const destination of this.#destinations.values()) {
      if (!destination.enabled) continue;
      let busy = this.#inFlight.get(destination.id);
      if (!busy) this.#inFlight.set(destination.id, (busy = new Set()));
      // Due deliveries are read ahead, a few hundred at a time, and started as slots free.
      let queue = this.#queued.get(destination.id) ?? [];
      while (busy.size < perDestination) {
        if (queue.length === 0) queue = store.due(destination.id, now, READ_AHEAD).filter((d) => !busy.has(d.id));
        const d = queue.shift();
        if (!d) break;
        busy.add(d.id);
        const attempt = this.#attempt(d, destination)
          .catch((err) => this.#o.onError?.(err))
          .finally(() => {
            busy.delete(d.id);
            this.#running.delete(attempt);
            this.#kick();
          });
        this.#running.add(attempt);
      }
      this.#queued.set(destination.id, queue);
    }
    for (const id of this.#queued.keys()) if (!this.#destinations.has(id)) this.#queued.delete(id);
  }

  /** Records outcomes and starts what is due as soon as slots free, once per turn of the event loop for all the attempts that ended in it. */
  #kick(): void {
    if (this.#kicked || this.#closed) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      if (this.#closed) return;
      try {
        this.#send();
      } catch (err) {
        this.#o.onError?.(err);
      }
    });
  }

  #finish(d: Delivery, status: DeliveryStatus, outcome: DeliveryOutcome, fields: DeliveryUpdate = {}): void {
    this.#writes.push({ id: d.id, fields: { status, finishedAt: this.#now(), ...fields } });
    this.#o.onOutcome?.(outcome);
  }

  #suppress(d: Delivery, destination: Destination): void {
    this.#finish(d, 'suppressed', 'suppressed', { lastError: `no consent for ${destination.purposes.join(', ')} (${destination.consentMode})` });
  }

  async #attempt(d: Delivery, destination: Destination): Promise<void> {
    const body = d.kind === 'event' ? this.#eventBody(d, destination) : this.#audienceBody(d, destination);
    if (body === undefined) return;
    const attempts = d.attempts + 1;
    const result = await this.#o.poster.post(destination.url, body, { 'tandem-signature': signature(destination.secret, body, this.#now()), 'tandem-delivery': `dlv_${d.id}`, 'tandem-event': d.kind });
    const sent = { attempts, body };
    if ('status' in result && result.status >= 200 && result.status < 300) return this.#finish(d, 'delivered', 'delivered', { ...sent, lastStatus: result.status, lastError: null });
    if ('status' in result && !retryable(result.status)) return this.#finish(d, 'dead', 'dead', { ...sent, lastStatus: result.status, lastError: `HTTP ${result.status}: not retried` });
    if ('error' in result && result.blocked) return this.#finish(d, 'dead', 'dead', { ...sent, lastError: result.error });
    const lastError = 'error' in result ? result.error : `HTTP ${result.status}`;
    const lastStatus = 'status' in result ? result.status : null;
    if (attempts >= this.#o.maxAttempts) return this.#finish(d, 'dead', 'dead', { ...sent, lastStatus, lastError: `${lastError}; gave up after ${attempts} attempts` });
    const backoff = Math.min(HOUR, this.#o.retryBaseMs * 2 ** (attempts - 1)) * (0.5 + Math.random() / 2);
    const wait = Math.min(HOUR, Math.max(backoff, ('retryAfterMs' in result ? result.retryAfterMs : undefined) ?? 0));
    this.#writes.push({ id: d.id, fields: { ...sent, nextAt: this.#now() + wait, lastStatus, lastError } });
    this.#o.onOutcome?.('retried');
  }

  /** An audience delivery's body, or undefined when it is settled without sending (cancelled, no consent, nothing to remove). */
  #audienceBody(d: Delivery, destination: Destination): string | undefined {
    const { store, profiles } = this.#o;
    const activation = this.#activations.get(d.activationId);
    if (!activation) return void this.#finish(d, 'cancelled', 'cancelled', { lastError: 'the activation was deleted' });
    const profileId = profiles.liveProfileOf(d.profileId) ?? d.profileId;
    if (d.kind === 'audience_entered' && !consented(destination, profiles.consents(profileId))) return void this.#suppress(d, destination);
    // The destination's view: an exit only of someone it has, an entry only of someone it has not.
    const holds = store.lastKind(activation.id, d.profileId, false) === 'audience_entered';
    if (d.kind === 'audience_exited' && !holds) return void this.#finish(d, 'skipped', 'skipped', { lastError: 'the destination does not have this profile' });
    if (d.kind === 'audience_entered' && holds) return void this.#finish(d, 'skipped', 'skipped', { lastError: 'the destination has this profile already' });
    return d.body ?? this.#body(d, activation, profileId);
  }

  /** An event delivery's body (the event as the event log shows it), or undefined when settled without sending. */
  #eventBody(d: Delivery, destination: Destination): string | undefined {
    const { profiles } = this.#o;
    if (!this.#streams.has(d.activationId)) return void this.#finish(d, 'cancelled', 'cancelled', { lastError: 'the event stream was deleted' });
    const event = this.#event(d.workspaceId, d.cause);
    if (!event) return void this.#finish(d, 'skipped', 'skipped', { lastError: 'the event is no longer in the log' });
    // The profile's consent as the stage left it after this event; the event's own without a profile.
    const colon = d.profileId.indexOf(':');
    const profileId = profiles.profileOf(d.workspaceId, { type: d.profileId.slice(0, colon), value: d.profileId.slice(colon + 1) });
    const consents = profileId ? profiles.consents(profileId) : (isObject(event.payload.context) && consentOf(event.payload.context)) || {};
    if (!consented(destination, consents)) return void this.#suppress(d, destination);
    return d.body ?? JSON.stringify({ id: `dlv_${d.id}`, type: 'event', workspaceId: d.workspaceId, eventId: event.id, sourceId: event.sourceId, event: event.payload });
  }

  /** One event by id (`record.index`), its record parsed once for all its events while it is among the last few read. */
  #event(workspaceId: string, eventId: string): StoredEvent | undefined {
    const [recordId, index] = eventId.split('.').map(Number) as [number, number];
    const key = `${workspaceId}|${recordId}`;
    let events = this.#records.get(key);
    if (!events) {
      const record = this.#o.log.get(workspaceId, recordId);
      if (!record) return undefined;
      events = expandRecord(record);
      if (this.#records.size >= PARSED_RECORDS) this.#records.delete(this.#records.keys().next().value!);
      this.#records.set(key, events);
    }
    return events[index];
  }

  /** What a delivery carries: the audience, the profile's chosen identifiers and traits as they are now. */
  #body(d: Delivery, activation: Activation, profileId: string): string {
    const { profiles } = this.#o;
    const identifiers: Record<string, string[]> = {};
    for (const id of profiles.identifiers(profileId)) if (activation.identifiers.includes(id.type)) (identifiers[id.type] ??= []).push(id.value);
    const values = profiles.traitValues(profileId);
    const traits = Object.fromEntries(activation.traits.filter((k) => k in values).map((k) => [k, values[k]]));
    const audience = profiles.audiences(d.workspaceId).find((a) => a.key === d.audienceKey);
    return JSON.stringify({
      id: `dlv_${d.id}`,
      type: d.kind,
      workspaceId: d.workspaceId,
      timestamp: new Date(d.at).toISOString(),
      audience: { key: d.audienceKey, name: audience?.name ?? d.audienceKey },
      profile: { id: profileId, identifiers, traits },
      cause: d.cause,
    });
  }
}
