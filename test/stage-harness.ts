import { judgeEvent } from '../src/ingest/normalize.ts';
import { createProfileStage } from '../src/profiles/stage.ts';
import { encodeMeta } from '../src/store/event-meta.ts';
import type { LogRecord } from '../src/store/ports.ts';
import { openDatabase, STATE_MIGRATIONS } from '../src/store/sqlite/database.ts';
import { SqliteProfileStore } from '../src/store/sqlite/profile-store.ts';

type Event = Record<string, unknown>;

/**
 * The real profile stage on a real state database, fed from an in-memory log, with a clock the
 * test controls: for properties and time-dependent behaviour without threads or HTTP.
 */
export function stageHarness(dir: string, name: string, clock: { now: number } = { now: 1_800_000_000_000 }, options: Parameters<typeof createProfileStage>[3] = {}, storeOptions: ConstructorParameters<typeof SqliteProfileStore>[1] = { columns: true }) {
  const db = openDatabase({ dataDir: dir, sync: 'normal', file: `${name}.db` }, STATE_MIGRATIONS);
  const store = new SqliteProfileStore(db, storeOptions);
  const records: LogRecord[] = [];
  const log = { readForward: (after: number, limit: number) => records.slice(after, after + limit), get: (_w: string, id: number) => records[id - 1] };
  const stage = createProfileStage(log, store, () => clock.now, options);
  const push = (kind: string, body: unknown, meta: string) => records.push({ id: records.length + 1, workspaceId: 'w', sourceId: 's', receivedAt: clock.now, kind, body: Buffer.from(JSON.stringify(body)), meta });
  return {
    store,
    db,
    clock,
    close: () => db.close(),
    send(...events: Event[]) {
      for (const e of events) {
        const verdict = judgeEvent(e, undefined, undefined, clock.now, { futureToleranceMs: 86_400_000, minTimestampMs: 0 }, 0);
        push('batch', { batch: [e] }, encodeMeta([verdict]));
      }
      while (stage.runOnce(64) < records.length);
    },
    /** An admin change, applied; background backfills run to the end unless `background` is set. */
    admin(op: string, payload: Record<string, unknown>, options: { background?: boolean } = {}) {
      push('admin', { ...payload, op, type: op }, encodeMeta([{ messageId: `admin-${records.length}`, type: op, status: 'accepted', timestamp: clock.now, reasons: [], userId: undefined, anonymousId: undefined, event: undefined }]));
      while (stage.runOnce(64) < records.length);
      if (!options.background) while (stage.backfillStep(1000));
    },
    /** A preview of a definition: its size and (up to 1000) matching profiles by their identifiers, sorted. */
    preview(definition: unknown) {
      const previewId = `preview-${records.length}`;
      this.admin('audience_preview', { audience: { key: 'preview', name: 'preview', definition }, previewId, sample: 1000 });
      const result = store.preview('w', previewId) as { size: number; sample: Array<{ profile_id: string }> };
      const named = (profileId: string) => store.identifiers(profileId).map((i) => `${i.type}:${i.value}`).sort().join(' ');
      return { size: result.size, sample: result.sample.map((s) => named(s.profile_id)).sort() };
    },
    /** One short slice of background backfill; whether any is left. */
    backfillStep: () => stage.backfillStep(0),
    expire: () => stage.expireWindows(),
    /** Loads every column the audiences read (as the idle stage does), or `steps` slices of them; how many slices it loaded. */
    warm(steps = Infinity) {
      let loaded = 0;
      while (loaded < steps && stage.warmColumns()) loaded++;
      return loaded;
    },
    profile: (type: string, value: string) => store.profileOf('w', { type, value }),
    audiences(type: string, value: string) {
      const p = store.profileOf('w', { type, value });
      return p ? store.memberships(p) : undefined;
    },
    computed(type: string, value: string) {
      const p = store.profileOf('w', { type, value });
      return p ? store.computedValues(p) : undefined;
    },
  };
}
