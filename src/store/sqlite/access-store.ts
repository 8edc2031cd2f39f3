import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AccessStore, Role, Token, WriteKey } from '../ports.ts';

type KeyRow = { key: string; workspace_id: string; source_id: string; name: string; created_at: number; revoked_at: number | null };
type TokenRow = { id: string; workspace_id: string; name: string; role: Role; created_at: number; revoked_at: number | null };

const toKey = (r: KeyRow): WriteKey => ({ key: r.key, workspaceId: r.workspace_id, sourceId: r.source_id, sourceName: r.name, createdAt: r.created_at, revokedAt: r.revoked_at });
const toToken = (r: TokenRow): Token => ({ id: r.id, workspaceId: r.workspace_id, name: r.name, role: r.role, createdAt: r.created_at, revokedAt: r.revoked_at });

const KEY_SELECT = 'SELECT k.key, s.workspace_id, k.source_id, s.name, k.created_at, k.revoked_at FROM write_keys k JOIN sources s ON s.id = k.source_id';
const TOKEN_SELECT = 'SELECT id, workspace_id, name, role, created_at, revoked_at FROM tokens';

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

  createToken(workspaceId: string, name: string, role: Role, tokenHash: string): Token {
    const id = `tok_${crypto.randomUUID()}`;
    this.#db.prepare('INSERT INTO tokens (id, workspace_id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(id, workspaceId, name, role, tokenHash, Date.now());
    return toToken(this.#db.prepare(`${TOKEN_SELECT} WHERE id = ?`).get(id) as TokenRow);
  }

  findTokenByHash(tokenHash: string): Token | undefined {
    const row = this.#db.prepare(`${TOKEN_SELECT} WHERE token_hash = ?`).get(tokenHash) as TokenRow | undefined;
    return row && toToken(row);
  }

  listTokens(workspaceId: string): Token[] {
    return (this.#db.prepare(`${TOKEN_SELECT} WHERE workspace_id = ? ORDER BY created_at`).all(workspaceId) as TokenRow[]).map(toToken);
  }

  revokeToken(workspaceId: string, id: string): boolean {
    return this.#db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND workspace_id = ? AND revoked_at IS NULL').run(Date.now(), id, workspaceId).changes > 0;
  }

  version(): number {
    return (this.#version.get() as { version: number }).version;
  }
}
