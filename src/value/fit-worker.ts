/**
 * Fits in their own thread, so the HTTP thread stays responsive: reads the workspace's purchases
 * from state.db (read-only), summarises, fits, and works out the diagnostics.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { STATE_DB } from '../store/sqlite/database.ts';
import { SqliteProfileStore } from '../store/sqlite/profile-store.ts';
import { diagnose, fitValue, TooFewCustomers, type ValueSettings } from './clv.ts';
import { summarize } from './summary.ts';

/** `holdoutEnd` defaults to the newest purchase (never before the calibration end). */
export type FitRequest = { dataDir: string; workspaceId: string; keys: string[]; settings: ValueSettings; calibrationEnd: number; holdoutEnd?: number };

const request = workerData as FitRequest;
const db = new DatabaseSync(join(request.dataDir, STATE_DB.file), { readOnly: true, timeout: 5000 });
try {
  const store = new SqliteProfileStore(db);
  const started = performance.now();
  const purchases = store.contributions(request.workspaceId, request.keys).map((c) => ({ customer: c.profileId, at: c.timestamp, amount: c.value }));
  const holdoutEnd = request.holdoutEnd ?? Math.max(request.calibrationEnd, ...purchases.map((p) => p.at));
  const summaries = summarize(purchases, { unit: request.settings.unit, calibrationEnd: request.calibrationEnd, holdoutEnd });
  if (summaries.length === 0) parentPort!.postMessage({ customers: 0 });
  else {
    const result = fitValue(summaries, request.settings);
    const diagnostics = diagnose(summaries, result, { unit: request.settings.unit, calibrationEnd: request.calibrationEnd, holdoutEnd });
    parentPort!.postMessage({ customers: summaries.length, result, diagnostics, seconds: (performance.now() - started) / 1000 });
  }
} catch (err) {
  parentPort!.postMessage(err instanceof TooFewCustomers ? { tooFew: err.message, customers: 0 } : { error: err instanceof Error ? err.message : String(err) });
} finally {
  db.close();
}
