/**
 * The profile stage's thread: reads the event log (tandem.db) and owns the writes to state.db.
 * Woken after each commit; runs until it has caught up with the log.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createProfileStage } from '../../profiles/stage.ts';
import { openDatabase, STATE_DB, STATE_MIGRATIONS, type SqliteOptions } from './database.ts';
import { SqliteLogReader } from './event-log.ts';
import { SqliteProfileStore } from './profile-store.ts';
import { COLUMNS_MAX_PROFILES } from './profile-columns.ts';
import type { ColumnStats } from '../ports.ts';
import { IngestPressure, SATURATION_MEMORY_MS } from '../../ops/ingest-pressure.ts';
import { BACKGROUND_NICE, lowerThreadPriority } from '../../ops/thread-priority.ts';

/** The pause between records while ingest is saturated. */
const YIELD_PAUSE_MS = 200;


export type StageRequest = { type: 'tick' } | { type: 'drain'; seq: number } | { type: 'close' };
export type StageReply =
  | { type: 'drained'; seq: number; checkpoint: number }
  | { type: 'failed'; error: string }
  /** What the stage keeps in memory changed (see ProfileColumns). */
  | ({ type: 'columns' } & ColumnStats)
  | { type: 'closed' };

export type StageOptions = SqliteOptions & { expiryMs?: number; pressure?: SharedArrayBuffer; columnsMaxProfiles?: number };

const options = workerData as StageOptions;
const pressure = options.pressure ? new IngestPressure(options.pressure) : undefined;
const port = parentPort!;
// Acknowledging events comes first: when ingest keeps the cores busy, the stage takes what is
// left and catches up afterwards (its lag is the tandem_profile_stage_lag_records metric).
lowerThreadPriority(BACKGROUND_NICE);
const logDb = openDatabase(options);
// state.db is derived from the log and its checkpoint moves in the same transaction as the state,
// so it needs no fsync per transaction: after a power loss both roll back together and the
// stage replays from the log. Process crashes lose nothing either way (WAL).
const stateDb = openDatabase({ ...options, sync: 'normal', ...STATE_DB }, STATE_MIGRATIONS);
const maxProfiles = options.columnsMaxProfiles ?? COLUMNS_MAX_PROFILES;
const store = new SqliteProfileStore(stateDb, { columns: maxProfiles > 0 && { maxProfiles } });
const { runOnce, backfillStep, expireWindows, warmColumns } = createProfileStage(new SqliteLogReader(logDb), store);
let kept: ColumnStats = { columns: 0, profiles: 0 };
/** Tells the main thread (metrics) when the columns kept in memory changed. */
function reportColumns(): void {
  const now = store.columnStats();
  if (now.columns === kept.columns && now.profiles === kept.profiles) return;
  kept = now;
  port.postMessage({ type: 'columns', ...now } satisfies StageReply);
}
const expiry = setInterval(() => {
  try {
    expireWindows();
  } catch (err) {
    port.postMessage({ type: 'failed', error: err instanceof Error ? err.message : String(err) } satisfies StageReply);
  }
}, options.expiryMs ?? 60_000);
let runOnceCheckpoint = -1;
let running = false;
let again = false;
let drains: number[] = [];

/**
 * Runs batches until the log is caught up, yielding between batches so messages get through.
 * Background backfills take a slice between batches: a short one while events are arriving, a
 * longer one when the stage is idle.
 */
function run(): void {
  if (running) {
    again = true;
    return;
  }
  running = true;
  const step = () => {
    let caughtUp: boolean;
    let more: boolean;
    // While ingest is saturated (or was, within the last pause) the stage gives way: one
    // record per pause instead of 64 at a time, unless someone waits for it to catch up (an
    // admin change or read), who then gets it at full speed.
    const yielding = drains.length === 0 && pressure !== undefined && pressure.saturatedWithin(SATURATION_MEMORY_MS);
    try {
      const before = runOnceCheckpoint;
      runOnceCheckpoint = runOnce(yielding ? 1 : 64);
      caughtUp = runOnceCheckpoint === before && !again;
      more = backfillStep(caughtUp ? 200 : yielding ? 1 : 10);
      // Idle: keep what audiences read in memory, one short step per turn (see warmColumns).
      if (caughtUp && !more && !yielding) more = warmColumns();
      reportColumns();
    } catch (err) {
      running = false;
      port.postMessage({ type: 'failed', error: err instanceof Error ? `${err.message}\n${err.stack}` : String(err) } satisfies StageReply);
      setTimeout(run, 1000);
      return;
    }
    again = false;
    if (caughtUp) {
      for (const seq of drains) port.postMessage({ type: 'drained', seq, checkpoint: runOnceCheckpoint } satisfies StageReply);
      drains = [];
    }
    if (!caughtUp || more) {
      if (yielding) setTimeout(step, YIELD_PAUSE_MS);
      else setImmediate(step);
      return;
    }
    running = false;
  };
  step();
}

port.on('message', (msg: StageRequest) => {
  if (msg.type === 'close') {
    clearInterval(expiry);
    logDb.close();
    stateDb.close();
    port.postMessage({ type: 'closed' } satisfies StageReply);
    return;
  }
  if (msg.type === 'drain') drains.push(msg.seq);
  run();
});
run();
