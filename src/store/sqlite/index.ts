import type { Stores } from '../ports.ts';
import { SqliteAccessStore } from './access-store.ts';
import { openDatabase, type SqliteOptions } from './database.ts';
import { SqliteEventLog } from './event-log.ts';

export type SqliteStoreOptions = SqliteOptions & { dedupeWindowMs?: number; onCommit?: (entries: number, seconds: number) => void };

/** The embedded default: one SQLite file holds the event log and the state. */
export function openSqliteStores(options: SqliteStoreOptions): Stores {
  const db = openDatabase(options);
  const writer = { dataDir: options.dataDir, sync: options.sync, dedupeWindowMs: options.dedupeWindowMs ?? 86_400_000, ...(options.file ? { file: options.file } : {}) };
  const log = new SqliteEventLog(db, writer, options.onCommit);
  return {
    log,
    access: new SqliteAccessStore(db),
    ready: () => {
      db.prepare('SELECT 1').get();
      return true;
    },
    close: async () => {
      await log.close();
      if (db.isOpen) db.close();
    },
  };
}
