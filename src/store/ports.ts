import type { ProfileReader, ProfileWriter } from '../profiles/ports.ts';

/**
 * The narrow ports the domains call. Adapters (sqlite/ now, postgres/ with cluster mode) implement
 * them and pass the shared contract suite in test/store-contract.test.ts.
 */

/** One request's worth of events, as ingest hands it to the log: the raw JSON and what ingest decided. */
export type LogEntry = {
  workspaceId: string;
  sourceId: string;
  receivedAt: number;
  /** `batch`, or the call type of a single-event request. */
  kind: string;
  /** The request body as received (inflated, without BOM), or as `bodyEncoding` says. */
  body: Buffer;
  /**
   * `zstd+meta`: the caller stored the entry already (store/log-encoding.ts's storedEntry), so
   * the adapter keeps it as it is: `body` is one frame of the verdicts then the JSON, and `meta`
   * the verdicts' length in bytes. An ingest thread does this beside the log writer, whose
   * commits are serial.
   */
  bodyEncoding?: 'zstd+meta';
  /**
   * Per event, in body order: what ingest decided, encoded by store/event-meta.ts (with
   * `bodyEncoding`, its length). The adapter stores it as ingest threads do. Records give back
   * the text.
   */
  meta: string;
  /**
   * Per event, in body order: what the dedupe window checks (keyList). Ingest passes the
   * messageIds it found (cheaper than reading them back from `meta`); a replay of a quarantined
   * event passes a key of its own (it keeps its messageId). Read from `meta` when absent.
   */
  dedupeKeys?: KeyList;
};

/** Strings as one text and where each ends: one string to hand between threads instead of many. */
export type KeyList = { text: string; ends: Uint32Array };

export function keyList(keys: readonly string[]): KeyList {
  const ends = new Uint32Array(keys.length);
  let text = '';
  for (let i = 0; i < keys.length; i++) ends[i] = (text += keys[i]!).length;
  return { text, ends };
}

export type LogRecord = Omit<LogEntry, 'dedupeKeys' | 'bodyEncoding' | 'meta'> & { id: number; meta: string };

/** What an append did: the record's id, and which events repeated a messageId of the window. */
export type Appended = { id: number; duplicates: number[] };

export interface EventLog {
  /**
   * Resolves once the entry is durable; concurrent appends share one commit. An event whose
   * messageId was appended to the same workspace within the dedupe window is stored marked
   * `duplicate` and reported in `duplicates`; the window outlives restarts.
   */
  append(entry: LogEntry, options?: AppendOptions): Promise<Appended>;
  /** Bytes accepted but not yet committed (for backpressure). */
  pendingBytes(): number;
  /** Newest first, ids strictly below `beforeId`, at most `limit` records. */
  readBackward(workspaceId: string, beforeId: number, limit: number): LogRecord[];
  /** Oldest first, ids strictly above `afterId`. */
  readForward(afterId: number, limit: number): LogRecord[];
  /** The same without the bodies: what ingest decided, for readers that pick events by their verdicts. */
  readVerdictsForward(afterId: number, limit: number): Array<Omit<LogRecord, 'body'>>;
  get(workspaceId: string, id: number): LogRecord | undefined;
  /** The id of the newest committed record (0 when the log is empty). */
  lastId(): number;
  close(): Promise<void>;
}

/** Admin roles, plus `access`: a Profile API token that opens no admin route. */
export type Role = 'owner' | 'engineer' | 'marketer' | 'analyst' | 'access';

export type WriteKey = { key: string; workspaceId: string; sourceId: string; sourceName: string; createdAt: number; revokedAt: number | null };
/** `pii`: reads show personal data unmasked (owners have it from the start). */
export type Token = { id: string; workspaceId: string; name: string; role: Role; pii: boolean; createdAt: number; revokedAt: number | null; /** Sessions: whose, and until when. */ userId?: string | null; expiresAt?: number | null };
export type User = { id: string; workspaceId: string; email: string; name: string; role: Role; pii: boolean; createdAt: number; disabledAt: number | null };

export interface AccessStore {
  ensureWorkspace(id: string, name: string): boolean;
  createWriteKey(workspaceId: string, sourceName: string, key: string): WriteKey;
  findWriteKey(key: string): WriteKey | undefined;
  listWriteKeys(workspaceId: string): WriteKey[];
  revokeWriteKey(workspaceId: string, key: string): boolean;
  createToken(workspaceId: string, name: string, role: Role, tokenHash: string, pii?: boolean): Token;
  findTokenByHash(tokenHash: string): Token | undefined;
  listTokens(workspaceId: string): Token[];
  revokeToken(workspaceId: string, id: string): boolean;
  /** Saves a new version of a tracking plan (1, 2, …); returns it. */
  savePlan(workspaceId: string, key: string, name: string, definition: string): StoredPlan;
  /** The latest version of a plan, or the given one. */
  plan(workspaceId: string, key: string, version?: number): StoredPlan | undefined;
  /** The latest version of every plan, and how many versions each has. */
  plans(workspaceId: string): Array<StoredPlan & { versions: number }>;
  sources(workspaceId: string): Source[];
  /** Attaches a plan to a source (or detaches it with null); false when the source is not the workspace's. */
  attachPlan(workspaceId: string, sourceId: string, plan: { key: string; enforcement: string } | null): boolean;
  /** The plan a source enforces, latest version. */
  sourcePlan(sourceId: string): { plan: StoredPlan; enforcement: string } | undefined;
  /** Records that a quarantined event was replayed; false when it already was. */
  recordReplay(workspaceId: string, eventId: string, replayEventId: string): boolean;
  replayOf(eventId: string): string | undefined;
  createUser(user: Omit<User, 'id' | 'createdAt' | 'disabledAt'>, passwordHash: string): User | undefined;
  users(workspaceId: string): User[];
  /** A user and their password hash, by email (for signing in). */
  userByEmail(workspaceId: string, email: string): (User & { passwordHash: string }) | undefined;
  /** Disables a user and revokes their sessions at once; false when there is no such user. */
  disableUser(workspaceId: string, id: string): boolean;
  setPassword(workspaceId: string, id: string, passwordHash: string): boolean;
  createSession(user: User, tokenHash: string, expiresAt: number): Token;
  saveChangeRequest(request: ChangeRequest): void;
  changeRequest(workspaceId: string, id: string): ChangeRequest | undefined;
  changeRequests(workspaceId: string, status?: string): ChangeRequest[];
  governanceSettings(workspaceId: string): string | undefined;
  setGovernanceSettings(workspaceId: string, settings: string): void;
  appendAudit(entry: AuditEntry): void;
  /** Audit entries after a cursor (their id), oldest first. */
  audit(workspaceId: string, filter: { after: number; limit: number; action?: string; actor?: string }): Array<AuditEntry & { id: number }>;
  /** Changes whenever keys, tokens or plans change, in any process (the CLI too), so caches can be dropped. */
  version(): number;
}

/** Who did what, when, to what; before and after as JSON where they apply. */
export type AuditEntry = { workspaceId: string; at: number; actor: string | null; role: string | null; action: 'change' | 'denied' | 'read_pii'; route: string; target: string; status: number; before: string | null; after: string | null };

/** A proposed change that the other side reviews; `proposal` is the change as JSON. */
export type ChangeRequest = {
  id: string; workspaceId: string; kind: string; target: string; proposal: string; baseVersion: number | null;
  status: 'open' | 'approved' | 'rejected' | 'applied'; proposedBy: string; proposedAt: number; comment: string | null;
  decidedBy: string | null; decidedAt: number | null; decisionComment: string | null; appliedVersion: number | null;
  /** What an applied request made when it is not a plan version: a destination's or an activation's id. */
  appliedRef: string | null;
};

/** Where audiences go: a webhook, with the consent purposes a profile must give before it is sent there. */
export type Destination = {
  id: string; workspaceId: string; name: string; url: string; secret: string; purposes: string[];
  /** `opt_in`: every purpose must be granted; `opt_out`: none may be denied. */
  consentMode: 'opt_in' | 'opt_out';
  enabled: boolean; createdAt: number; createdBy: string;
};

/** One audience sent to one destination, with the traits and identifier types each delivery carries. */
export type Activation = {
  id: string; workspaceId: string; destinationId: string; audienceKey: string; traits: string[]; identifiers: string[];
  /** The newest audience change (audience_history id) already turned into deliveries. */
  after: number;
  /**
   * The first sync: the audience's members (unchanged since the activation was made) are queued
   * as entries in profile id order after this one; '' before the first, null when done or not wanted.
   */
  syncAfter: string | null;
  /** The audience history's newest change when the activation was made: members changed since come through `after`. */
  syncChange: number;
  createdAt: number; createdBy: string;
};

/** Events of a workspace (or one source) forwarded to a destination as they are applied, filtered by type and name. */
export type EventStream = {
  id: string; workspaceId: string; destinationId: string; sourceId: string | null;
  /** Call types forwarded (empty: all); track event names forwarded (empty: all). */
  types: string[]; events: string[];
  /** The newest log record already turned into deliveries. */
  after: number;
  createdAt: number; createdBy: string;
};

export type DeliveryStatus = 'pending' | 'delivered' | 'dead' | 'suppressed' | 'skipped' | 'cancelled';

/** One entry or exit on its way to a destination; `body` is fixed at the first attempt, so retries send the same bytes. */
export type Delivery = {
  /** `activationId`: the activation or event stream it comes from; `profileId`: what orders it (a profile id, or `type:value` of an event's identity). */
  id: number; workspaceId: string; destinationId: string; activationId: string; profileId: string; kind: 'audience_entered' | 'audience_exited' | 'event'; audienceKey: string;
  at: number; cause: string; status: DeliveryStatus; attempts: number; nextAt: number; body: string | null; lastStatus: number | null; lastError: string | null;
  createdAt: number; finishedAt: number | null;
};

/** What an attempt changes about a delivery. */
export type DeliveryUpdate = Partial<Pick<Delivery, 'status' | 'attempts' | 'nextAt' | 'body' | 'lastStatus' | 'lastError' | 'finishedAt'>>;

/** Something to deliver: what orders it (`profileId`), when it happened and the event that caused it. */
export type QueuedDelivery = { profileId: string; at: number; eventId: string };
/** An entry or exit to deliver: the audience change it comes from. */
export type DeliveryChange = QueuedDelivery & { change: 'enter' | 'exit' };

/** Destinations, activations and the delivery queue (activate.db in the embedded store). */
export interface ActivationStore {
  saveDestination(destination: Destination): void;
  destination(workspaceId: string, id: string): Destination | undefined;
  /** One workspace's destinations, or every workspace's. */
  destinations(workspaceId?: string): Destination[];
  createStream(stream: EventStream): void;
  stream(workspaceId: string, id: string): EventStream | undefined;
  /** Every event stream (all workspaces) or one workspace's. */
  streams(workspaceId?: string): EventStream[];
  /** Deletes an event stream; its pending deliveries are cancelled. */
  deleteStream(workspaceId: string, id: string): boolean;
  /** Queues event deliveries (`eventId` in `eventId`, ordered by `profileId`) and moves the stream past log record `upTo`; false when it had moved or is gone. */
  enqueueEvents(stream: EventStream, events: QueuedDelivery[], upTo: number, now: number): boolean;
  /** Deletes a destination, its activations and event streams, and their deliveries. */
  deleteDestination(workspaceId: string, id: string): boolean;
  createActivation(activation: Activation): void;
  /** Changes the traits and identifier types an activation's deliveries carry (those not yet built, too); false when there is no such activation. */
  setActivationFields(workspaceId: string, id: string, fields: Pick<Activation, 'traits' | 'identifiers'>): boolean;
  /**
   * Queues a page of the first sync's entries and moves its cursor to `next` (null: done), in one
   * transaction; false (nothing queued) when the activation is gone or its cursor moved.
   */
  syncMembers(activation: Activation, entries: DeliveryChange[], next: string | null, now: number): boolean;
  activation(workspaceId: string, id: string): Activation | undefined;
  /** Every activation (all workspaces) or one workspace's. */
  activations(workspaceId?: string): Activation[];
  /** Deletes an activation; its pending deliveries are cancelled. */
  deleteActivation(workspaceId: string, id: string): boolean;
  /**
   * Queues deliveries for audience changes and moves the activation past `upTo`, in one
   * transaction; false (nothing queued) when the activation is gone or no longer at `activation.after`.
   */
  enqueue(activation: Activation, changes: DeliveryChange[], upTo: number, now: number): boolean;
  /**
   * A destination's pending deliveries due by `now`, oldest first, each the oldest pending one of
   * its profile there (so a profile's entry and exit arrive in order).
   */
  due(destinationId: string, now: number, limit: number): Delivery[];
  /** Sets deliveries' outcome fields, all in one transaction. */
  updateDeliveries(updates: Array<{ id: number; fields: DeliveryUpdate }>): void;
  /** The kind of the newest delivered (or, `withPending`, also queued) delivery of an activation for a profile: whether the destination has it, or will. */
  lastKind(activationId: string, profileId: string, withPending: boolean): Delivery['kind'] | undefined;
  /** A position in a feed every activation follows (0 before the first move). */
  cursor(name: string): number;
  /** Moves a feed position from `from` to `to` and queues deliveries for it, in one transaction; false (nothing queued) when it was not at `from`. */
  queueAtCursor(name: string, from: number, to: number, items: Array<{ activation: Activation; change: DeliveryChange }>, now: number): boolean;
  /** A destination's deliveries, newest first, ids below `before`. */
  deliveries(workspaceId: string, destinationId: string, filter: { status?: DeliveryStatus; before: number; limit: number }): Delivery[];
  /** Counts by status for one destination. */
  deliveryCounts(destinationId: string): Partial<Record<DeliveryStatus, number>>;
  /** Puts dead deliveries (all of the destination's, or those named) back in the queue; how many. */
  retryDead(workspaceId: string, destinationId: string, ids: number[] | undefined, now: number): number;
  /** Changes whenever a destination or activation is saved or deleted through this store, so a reader can keep them cached. */
  version(): number;
  /** Deliveries waiting, across the store (metrics). */
  pending(): number;
  close(): void;
}

export type StoredPlan = { key: string; name: string; version: number; definition: string; createdAt: number };
export type Source = { id: string; name: string; plan: { key: string; enforcement: string } | null };

/** The profile stage, running beside ingest. */
export interface StageHandle {
  /** Wakes the stage after a commit. */
  notify(): void;
  /** Resolves once everything committed before the call has been processed; rejects `unavailable` if the stage has stopped. */
  caughtUp(): Promise<number>;
  /** What the stage keeps in memory for audiences (see ProfileColumns). */
  columns?(): ColumnStats;
}

/** The columns of values audiences read that the profile stage keeps in memory, and over how many profiles. */
export type ColumnStats = { columns: number; profiles: number };

/**
 * Where the stores live, as plain data that can cross to a worker thread, which opens its own
 * connection (for SQLite: `openSqliteAccess` in store/sqlite/access-store.ts).
 */
export type StoreLocation = { adapter: 'sqlite'; dataDir: string; sync: 'full' | 'normal'; file?: string };

/** `moveBody`: the log may take `entry.body`'s memory instead of copying it; the caller must not read it afterwards. */
export type AppendOptions = { moveBody?: boolean };

export interface Stores {
  log: EventLog;
  access: AccessStore;
  /** Absent for stores that cannot be reopened from another thread; work then stays in-process. */
  location?: StoreLocation;
  profiles: ProfileReader & Pick<ProfileWriter, 'setRules'>;
  activation: ActivationStore;
  /** Absent when the stores were opened for administration only (the CLI). */
  stage: StageHandle | undefined;
  ready(): boolean;
  close(): Promise<void>;
}
