import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const MIGRATIONS = [
  `CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE sources (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id), name TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (workspace_id, name));
   CREATE TABLE write_keys (key TEXT PRIMARY KEY, source_id TEXT NOT NULL REFERENCES sources(id), created_at INTEGER NOT NULL, revoked_at INTEGER);
   CREATE TABLE tokens (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id), name TEXT NOT NULL, role TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, revoked_at INTEGER);
   CREATE TABLE log (id INTEGER PRIMARY KEY, workspace_id TEXT NOT NULL, source_id TEXT NOT NULL, received_at INTEGER NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL, meta TEXT NOT NULL);
   CREATE INDEX log_workspace ON log (workspace_id, id);`,
  `CREATE TABLE access_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
   INSERT INTO access_version VALUES (1, 0);
   CREATE TRIGGER write_keys_insert AFTER INSERT ON write_keys BEGIN UPDATE access_version SET version = version + 1; END;
   CREATE TRIGGER write_keys_update AFTER UPDATE ON write_keys BEGIN UPDATE access_version SET version = version + 1; END;
   CREATE TRIGGER write_keys_delete AFTER DELETE ON write_keys BEGIN UPDATE access_version SET version = version + 1; END;
   CREATE TRIGGER tokens_insert AFTER INSERT ON tokens BEGIN UPDATE access_version SET version = version + 1; END;
   CREATE TRIGGER tokens_update AFTER UPDATE ON tokens BEGIN UPDATE access_version SET version = version + 1; END;
   CREATE TRIGGER tokens_delete AFTER DELETE ON tokens BEGIN UPDATE access_version SET version = version + 1; END;`,
];

export type SqliteOptions = { dataDir: string; sync: 'full' | 'normal'; file?: string };

/** Opens (creating if needed) the embedded database in WAL mode and brings its schema up to date. */
export function openDatabase(options: SqliteOptions): DatabaseSync {
  mkdirSync(options.dataDir, { recursive: true });
  const db = new DatabaseSync(join(options.dataDir, options.file ?? 'tandem.db'), { timeout: 5000 });
  // 16 KB pages: request bodies of tens of KB span fewer overflow pages (set before the first table).
  db.exec('PRAGMA page_size = 16384');
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}; PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536;`);
  const version = () => (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (version() < MIGRATIONS.length) {
    db.exec('BEGIN IMMEDIATE');
    try {
      for (let v = version(); v < MIGRATIONS.length; v++) {
        db.exec(MIGRATIONS[v]!);
        db.exec(`PRAGMA user_version = ${v + 1}`);
      }
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  }
  return db;
}
