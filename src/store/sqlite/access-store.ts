import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AccessStore, AuditEntry, ChangeRequest, Role, Source, StoreLocation, StoredPlan, Token, User, WriteKey } from '../ports.ts';
import { immediate, openDatabase } from './database.ts';

type KeyRow = { key: string; workspace_id: string; source_id: string; name: string; created_at: number; revoked_at: number | null };
type TokenRow = { id: string; workspace_id: string; name: string; role: Role; pii: number; created_at: number; revoked_at: number | null; user_id: string | null; expires_at: number | null };

const toKey = (r: KeyRow): WriteKey => ({ key: r.key, workspaceId: r.workspace_id, sourceId: r.source_id, sourceName: r.name, createdAt: r.created_at, revokedAt: r.revoked_at });
const toToken = (r: TokenRow): Token => ({ id: r.id, workspaceId: r.workspace_id, name: r.name, role: r.role, pii: r.pii === 1, createdAt: r.created_at, revokedAt: r.revoked_at, userId: r.user_id, expiresAt: r.expires_at });
type UserRow = { id: string; workspace_id: string; email: string; name: string; role: Role; pii: number; password_hash: string; created_at: number; disabled_at: number | null };
const toUser = (r: UserRow): User => ({ id: r.id, workspaceId: r.workspace_id, email: r.email, name: r.name, role: r.role, pii: r.pii === 1, createdAt: r.created_at, disabledAt: r.disabled_at });

const KEY_SELECT = 'SELECT k.key, s.workspace_id, k.source_id, s.name, k.created_at, k.revoked_at FROM write_keys k JOIN sources s ON s.id = k.source_id';
const TOKEN_SELECT = 'SELECT id, workspace_id, name, role, pii, created_at, revoked_at, user_id, expires_at FROM tokens';

type PlanRow = { key: string; name: string; version: number; definition: string; created_at: number };
const PLAN_SELECT = 'SELECT key, name, version, definition, created_at FROM tracking_plans';
const toPlan = (r: PlanRow): StoredPlan => ({ key: r.key, name: r.name, version: r.version, definition: r.definition, createdAt: r.created_at });

type ChangeRow = {
  id: string; workspace_id: string; kind: string; target: string; proposal: string; base_version: number | null; status: ChangeRequest['status']; proposed_by: string; proposed_at: number;
  comment: string | null; decided_by: string | null; decided_at: number | null; decision_comment: string | null; applied_version: number | null; applied_ref: string | null;
};
const toChange = (r: ChangeRow): ChangeRequest => ({
  id: r.id, workspaceId: r.workspace_id, kind: r.kind, target: r.target, proposal: r.proposal, baseVersion: r.base_version, status: r.status, proposedBy: r.proposed_by, proposedAt: r.proposed_at,
  comment: r.comment, decidedBy: r.decided_by, decidedAt: r.decided_at, decisionComment: r.decision_comment, appliedVersion: r.applied_version, appliedRef: r.applied_ref,
});

export class SqliteAccessStore implements AccessStore {
  readonly #db: DatabaseSync;
  readonly #version: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#version = db.prepare('SELECT version FROM access_version');
  }

  ensureWorkspace(id: string, name: string): boolean {
    return this.#db.prepare('INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(id, name, Date.now()).changes > 0;
  }

  createWriteKey(workspaceId: string, sourceName: string, key: string): WriteKey {
    const now = Date.now();
    this.#db.prepare('INSERT INTO sources (id, workspace_id, name, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(`src_${crypto.randomUUID()}`, workspaceId, sourceName, now);
    const source = this.#db.prepare('SELECT id FROM sources WHERE workspace_id = ? AND name = ?').get(workspaceId, sourceName) as { id: string };
    this.#db.prepare('INSERT INTO write_keys (key, source_id, created_at) VALUES (?, ?, ?)').run(key, source.id, now);
    return this.findWriteKey(key)!;
  }

  findWriteKey(key: string): WriteKey | undefined {
    const row = this.#db.prepare(`${KEY_SELECT} WHERE k.key = ?`).get(key) as KeyRow | undefined;
    return row && toKey(row);
  }

  listWriteKeys(workspaceId: string): WriteKey[] {
    return (this.#db.prepare(`${KEY_SELECT} WHERE s.workspace_id = ? ORDER BY k.created_at`).all(workspaceId) as KeyRow[]).map(toKey);
  }

  revokeWriteKey(workspaceId: string, key: string): boolean {
    return this.#db.prepare('UPDATE write_keys SET revoked_at = ? WHERE key = ? AND revoked_at IS NULL AND source_id IN (SELECT id FROM sources WHERE workspace_id = ?)').run(Date.now(), key, workspaceId).changes > 0;
  }

  createToken(workspaceId: string, name: string, role: Role, tokenHash: string, pii = role === 'owner'): Token {
    const id = `tok_${crypto.randomUUID()}`;
    this.#db.prepare('INSERT INTO tokens (id, workspace_id, name, role, token_hash, pii, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(id, workspaceId, name, role, tokenHash, pii ? 1 : 0, Date.now());
    return toToken(this.#db.prepare(`${TOKEN_SELECT} WHERE id = ?`).get(id) as TokenRow);
  }

  findTokenByHash(tokenHash: string): Token | undefined {
    const row = this.#db.prepare(`${TOKEN_SELECT} WHERE token_hash = ?`).get(tokenHash) as TokenRow | undefined;
    return row && toToken(row);
  }

  listTokens(workspaceId: string): Token[] {
    return (this.#db.prepare(`${TOKEN_SELECT} WHERE workspace_id = ? AND user_id IS NULL ORDER BY created_at`).all(workspaceId) as TokenRow[]).map(toToken);
  }

  createUser(user: Omit<User, 'id' | 'createdAt' | 'disabledAt'>, passwordHash: string): User | undefined {
    const id = `usr_${crypto.randomUUID()}`;
    const created = this.#db.prepare('INSERT INTO users (id, workspace_id, email, name, role, pii, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING').run(id, user.workspaceId, user.email, user.name, user.role, user.pii ? 1 : 0, passwordHash, Date.now());
    return created.changes > 0 ? this.users(user.workspaceId).find((u) => u.id === id) : undefined;
  }

  users(workspaceId: string): User[] {
    return (this.#db.prepare('SELECT * FROM users WHERE workspace_id = ? ORDER BY email').all(workspaceId) as UserRow[]).map(toUser);
  }

  userByEmail(workspaceId: string, email: string): (User & { passwordHash: string }) | undefined {
    const row = this.#db.prepare('SELECT * FROM users WHERE workspace_id = ? AND email = ?').get(workspaceId, email) as UserRow | undefined;
    return row && { ...toUser(row), passwordHash: row.password_hash };
  }

  disableUser(workspaceId: string, id: string): boolean {
    const now = Date.now();
    const changed = this.#db.prepare('UPDATE users SET disabled_at = ? WHERE id = ? AND workspace_id = ? AND disabled_at IS NULL').run(now, id, workspaceId).changes > 0;
    if (changed) this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL').run(now, id);
    return changed;
  }

  setPassword(workspaceId: string, id: string, passwordHash: string): boolean {
    return this.#db.prepare('UPDATE users SET password_hash = ? WHERE id = ? AND workspace_id = ? AND disabled_at IS NULL').run(passwordHash, id, workspaceId).changes > 0;
  }

  createSession(user: User, tokenHash: string, expiresAt: number): Token {
    const id = `ses_${crypto.randomUUID()}`;
    this.#db.prepare('INSERT INTO tokens (id, workspace_id, name, role, token_hash, pii, created_at, user_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(id, user.workspaceId, `session ${user.email}`, user.role, tokenHash, user.pii ? 1 : 0, Date.now(), user.id, expiresAt);
    return toToken(this.#db.prepare(`${TOKEN_SELECT} WHERE id = ?`).get(id) as TokenRow);
  }

  revokeToken(workspaceId: string, id: string): boolean {
    return this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL').run(Date.now(), id, workspaceId).changes > 0;
  }

  savePlan(workspaceId: string, key: string, name: string, definition: string): StoredPlan {
    const db = this.#db;
    immediate(db, () => {
      const { v } = db.prepare('SELECT coalesce(max(version), 0) + 1 AS v FROM tracking_plans WHERE workspace_id = ? AND key = ?').get(workspaceId, key) as { v: number };
      db.prepare('INSERT INTO tracking_plans (workspace_id, key, version, name, definition, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(workspaceId, key, v, name, definition, Date.now());
    });
    return this.plan(workspaceId, key)!;
  }

  plan(workspaceId: string, key: string, version?: number): StoredPlan | undefined {
    const row = (version === undefined
      ? this.#db.prepare(`${PLAN_SELECT} WHERE workspace_id = ? AND key = ? ORDER BY version DESC LIMIT 1`).get(workspaceId, key)
      : this.#db.prepare(`${PLAN_SELECT} WHERE workspace_id = ? AND key = ? AND version = ?`).get(workspaceId, key, version)) as PlanRow | undefined;
    return row && toPlan(row);
  }

  plans(workspaceId: string): Array<StoredPlan & { versions: number }> {
    const rows = this.#db.prepare(`${PLAN_SELECT} p WHERE workspace_id = ? AND version = (SELECT max(version) FROM tracking_plans q WHERE q.workspace_id = p.workspace_id AND q.key = p.key) ORDER BY key`).all(workspaceId) as PlanRow[];
    return rows.map((r) => ({ ...toPlan(r), versions: r.version }));
  }

  sources(workspaceId: string): Source[] {
    const rows = this.#db.prepare('SELECT s.id, s.name, p.plan_key, p.enforcement FROM sources s LEFT JOIN source_plans p ON p.source_id = s.id WHERE s.workspace_id = ? ORDER BY s.name').all(workspaceId) as Array<{ id: string; name: string; plan_key: string | null; enforcement: string | null }>;
    return rows.map((r) => ({ id: r.id, name: r.name, plan: r.plan_key === null ? null : { key: r.plan_key, enforcement: r.enforcement! } }));
  }

  attachPlan(workspaceId: string, sourceId: string, plan: { key: string; enforcement: string } | null): boolean {
    if (!this.#db.prepare('SELECT 1 FROM sources WHERE id = ? AND workspace_id = ?').get(sourceId, workspaceId)) return false;
    if (plan === null) this.#db.prepare('DELETE FROM source_plans WHERE source_id = ?').run(sourceId);
    else this.#db.prepare('INSERT INTO source_plans (source_id, plan_key, enforcement, attached_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET plan_key = excluded.plan_key, enforcement = excluded.enforcement, attached_at = excluded.attached_at').run(sourceId, plan.key, plan.enforcement, Date.now());
    return true;
  }

  sourcePlan(sourceId: string): { plan: StoredPlan; enforcement: string } | undefined {
    const row = this.#db.prepare('SELECT s.workspace_id, p.plan_key, p.enforcement FROM source_plans p JOIN sources s ON s.id = p.source_id WHERE p.source_id = ?').get(sourceId) as { workspace_id: string; plan_key: string; enforcement: string } | undefined;
    const plan = row && this.plan(row.workspace_id, row.plan_key);
    return plan && { plan, enforcement: row.enforcement };
  }

  recordReplay(workspaceId: string, eventId: string, replayEventId: string): boolean {
    return this.#db.prepare('INSERT INTO replays (event_id, workspace_id, replay_event_id, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(eventId, workspaceId, replayEventId, Date.now()).changes > 0;
  }

  replayOf(eventId: string): string | undefined {
    return (this.#db.prepare('SELECT replay_event_id FROM replays WHERE event_id = ?').get(eventId) as { replay_event_id: string } | undefined)?.replay_event_id;
  }

  saveChangeRequest(c: ChangeRequest): void {
    this.#db
      .prepare(`INSERT INTO change_requests (id, workspace_id, kind, target, proposal, base_version, status, proposed_by, proposed_at, comment, decided_by, decided_at, decision_comment, applied_version, applied_ref)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET status = excluded.status, decided_by = excluded.decided_by, decided_at = excluded.decided_at,
        decision_comment = excluded.decision_comment, applied_version = excluded.applied_version, applied_ref = excluded.applied_ref`)
      .run(c.id, c.workspaceId, c.kind, c.target, c.proposal, c.baseVersion, c.status, c.proposedBy, c.proposedAt, c.comment, c.decidedBy, c.decidedAt, c.decisionComment, c.appliedVersion, c.appliedRef);
  }

  changeRequest(workspaceId: string, id: string): ChangeRequest | undefined {
    const row = this.#db.prepare('SELECT * FROM change_requests WHERE workspace_id = ? AND id = ?').get(workspaceId, id) as ChangeRow | undefined;
    return row && toChange(row);
  }

  changeRequests(workspaceId: string, status?: string): ChangeRequest[] {
    return (this.#db.prepare('SELECT * FROM change_requests WHERE workspace_id = ? AND (? IS NULL OR status = ?) ORDER BY proposed_at DESC, id').all(workspaceId, status ?? null, status ?? null) as ChangeRow[]).map(toChange);
  }

  governanceSettings(workspaceId: string): string | undefined {
    return (this.#db.prepare('SELECT settings FROM governance_settings WHERE workspace_id = ?').get(workspaceId) as { settings: string } | undefined)?.settings;
  }

  setGovernanceSettings(workspaceId: string, settings: string): void {
    this.#db.prepare('INSERT INTO governance_settings (workspace_id, settings) VALUES (?, ?) ON CONFLICT DO UPDATE SET settings = excluded.settings').run(workspaceId, settings);
  }

  appendAudit(e: AuditEntry): void {
    this.#db.prepare('INSERT INTO audit (workspace_id, at, actor, role, action, route, target, status, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(e.workspaceId, e.at, e.actor, e.role, e.action, e.route, e.target, e.status, e.before, e.after);
  }

  audit(workspaceId: string, filter: { after: number; limit: number; action?: string; actor?: string }) {
    const rows = this.#db
      .prepare('SELECT id, workspace_id, at, actor, role, action, route, target, status, before, after FROM audit WHERE workspace_id = ? AND id > ? AND (? IS NULL OR action = ?) AND (? IS NULL OR actor = ?) ORDER BY id LIMIT ?')
      .all(workspaceId, filter.after, filter.action ?? null, filter.action ?? null, filter.actor ?? null, filter.actor ?? null, filter.limit) as Array<{ id: number; workspace_id: string; at: number; actor: string | null; role: string | null; action: AuditEntry['action']; route: string; target: string; status: number; before: string | null; after: string | null }>;
    return rows.map((r) => ({ id: r.id, workspaceId: r.workspace_id, at: r.at, actor: r.actor, role: r.role, action: r.action, route: r.route, target: r.target, status: r.status, before: r.before, after: r.after }));
  }

  version(): number {
    return (this.#version.get() as { version: number }).version;
  }
}

/** Access state on a connection of its own, for a worker thread. */
export function openSqliteAccess(location: StoreLocation): { access: AccessStore; close: () => void } {
  const db = openDatabase(location);
  return { access: new SqliteAccessStore(db), close: () => db.close() };
}
