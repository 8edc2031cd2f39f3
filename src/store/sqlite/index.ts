import type { Stores } from '../ports.ts';
import { SqliteAccessStore } from './access-store.ts';
import { ACTIVATE_MIGRATIONS, SqliteActivationStore } from './activation-store.ts';
import { openDatabase, STATE_DB, STATE_MIGRATIONS, type SqliteOptions } from './database.ts';
import { SqliteEventLog } from './event-log.ts';
import { ProfileStageRunner } from './profile-stage-runner.ts';
import { SqliteProfileStore } from './profile-store.ts';

export type SqliteStoreOptions = SqliteOptions & {
  dedupeWindowMs?: number;
  onCommit?: (entries: number, seconds: number) => void;
  onLogLoaded?: (ids: number, seconds: number) => void;
  /**
   * Run the profile stage on its own thread and start the log writer at once (the server); the
   * CLI leaves both off and starts the writer only if it appends.
   */
  stage?: boolean;
  onStageError?: (error: string) => void;
  /** Shared with the HTTP thread's ingest path (IngestPressure): the stage gives way while it is saturated. */
  ingestPressure?: SharedArrayBuffer;
  /** Workspaces up to this many live profiles get columns kept in memory by the stage (see ProfileColumns); 0: none. */
  columnsMaxProfiles?: number;
};

/** The embedded default: tandem.db holds the event log and access state, state.db the profiles, activate.db the delivery queue. */
export function openSqliteStores(options: SqliteStoreOptions): Stores {
  const base = { dataDir: options.dataDir, sync: options.sync };
  const db = openDatabase(options);
  const stateDb = openDatabase({ ...base, ...STATE_DB }, STATE_MIGRATIONS);
  const activation = new SqliteActivationStore(openDatabase({ ...base, file: 'activate.db' }, ACTIVATE_MIGRATIONS), { sync: options.sync });
  const logDb = { ...base, ...(options.file ? { file: options.file } : {}) };
  const log = new SqliteEventLog(db, { ...logDb, dedupeWindowMs: options.dedupeWindowMs ?? 86_400_000 }, {
    ...(options.onCommit ? { onCommit: options.onCommit } : {}),
    ...(options.onLogLoaded ? { onLoaded: options.onLogLoaded } : {}),
  });
  if (options.stage) log.open();
  const stage = options.stage
    ? new ProfileStageRunner({ ...base, ...(options.ingestPressure ? { pressure: options.ingestPressure } : {}), ...(options.columnsMaxProfiles !== undefined ? { columnsMaxProfiles: options.columnsMaxProfiles } : {}) }, options.onStageError)
    : undefined;
  let closed = false;
  return {
    log,
    access: new SqliteAccessStore(db),
    location: { adapter: 'sqlite', ...logDb },
    profiles: new SqliteProfileStore(stateDb, { checkEachRead: true }),
    activation,
    stage,
    // Not ready while the log writer loads its dedupe window: appends would wait for it.
    ready: () => {
      db.prepare('SELECT 1').get();
      stateDb.prepare('SELECT 1').get();
      return !options.stage || log.loaded();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await log.close();
      await stage?.close();
      db.close();
      stateDb.close();
      activation.close();
    },
  };
}
