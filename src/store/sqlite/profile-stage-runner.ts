import { Worker } from 'node:worker_threads';
import { TandemError } from '../../errors.ts';
import type { ColumnStats } from '../ports.ts';
import type { StageOptions, StageReply, StageRequest } from './profile-stage-worker.ts';
import { IngestPressure, SATURATION_MEMORY_MS } from '../../ops/ingest-pressure.ts';

/** The first pause before a stage thread that ended is started again; each next one doubles, up to the longest. */
const FIRST_PAUSE_MS = 250;
const LONGEST_PAUSE_MS = 30_000;
/** A thread that has run this long without ending is healthy again: the next pause is the first. */
const HEALTHY_AFTER_MS = 60_000;
/**
 * While ingest is saturated the stage takes one record per pause whatever it is told (see the
 * worker), so it is woken at most this often instead of once per turn of the event loop (a
 * postMessage each, measured at 6% of this thread's time under load).
 */
const SATURATED_WAKE_MS = 100;

/**
 * The main thread's handle on the profile stage's thread. Should the thread end (a crash), those
 * waiting for it and those who wait before it is back are answered `unavailable` rather than
 * never, and a new thread is started after a pause (0.25 s, doubling up to 30 s while it keeps
 * ending): it resumes from the stage's checkpoint, which moves in the same transaction as the
 * profiles, so nothing is applied twice or skipped.
 */
export class ProfileStageRunner {
  #worker!: Worker;
  readonly #options: StageOptions;
  readonly #script: URL;
  readonly #waiters = new Map<number, { resolve: (checkpoint: number) => void; reject: (err: unknown) => void }>();
  /** Set while no thread runs (between an end and the restart). */
  #ended: Error | undefined;
  readonly #onError: (error: string) => void;
  #seq = 0;
  #closed = false;
  #notifying = false;
  #lastWake = 0;
  readonly #pressure: IngestPressure | undefined;
  #columns: ColumnStats = { columns: 0, profiles: 0 };
  #pause = FIRST_PAUSE_MS;
  #startedAt = 0;
  #restart: NodeJS.Timeout | undefined;
  #starts = 0;

  /** `script` is the thread's code: profile-stage-worker.ts, or a stand-in in tests. */
  constructor(options: StageOptions, onError: (error: string) => void = () => {}, script = new URL('./profile-stage-worker.ts', import.meta.url)) {
    this.#options = options;
    this.#onError = onError;
    this.#script = script;
    this.#pressure = options.pressure ? new IngestPressure(options.pressure) : undefined;
    this.#start();
  }

  /** How many threads have been started (tests). */
  starts(): number {
    return this.#starts;
  }

  #start(): void {
    this.#ended = undefined;
    this.#startedAt = Date.now();
    this.#starts++;
    const worker = new Worker(this.#script, { workerData: this.#options });
    this.#worker = worker;
    worker.on('message', (reply: StageReply) => {
      if (reply.type === 'drained') {
        this.#waiters.get(reply.seq)?.resolve(reply.checkpoint);
        this.#waiters.delete(reply.seq);
      } else if (reply.type === 'failed') this.#onError(reply.error);
      else if (reply.type === 'columns') this.#columns = { columns: reply.columns, profiles: reply.profiles };
    });
    worker.on('error', (err) => this.#onError(String(err)));
    worker.on('exit', (code) => {
      this.#ended = new Error(`profile stage thread exited with ${code}`);
      for (const w of this.#waiters.values()) w.reject(new TandemError('unavailable', undefined, { cause: this.#ended }));
      this.#waiters.clear();
      if (this.#closed) return;
      if (Date.now() - this.#startedAt >= HEALTHY_AFTER_MS) this.#pause = FIRST_PAUSE_MS;
      this.#onError(`${this.#ended.message}; starting it again in ${this.#pause} ms`);
      this.#restart = setTimeout(() => {
        if (this.#closed) return;
        this.#start();
        // It has records to catch up on, committed while no thread ran.
        this.notify();
      }, this.#pause);
      this.#pause = Math.min(this.#pause * 2, LONGEST_PAUSE_MS);
    });
  }

  /** New records were committed to the log: one wake-up per turn of the event loop is enough. */
  notify(): void {
    if (this.#closed || this.#notifying) return;
    this.#notifying = true;
    const wake = () => {
      this.#notifying = false;
      this.#lastWake = performance.now();
      if (!this.#closed && !this.#ended) this.#worker.postMessage({ type: 'tick' } satisfies StageRequest);
    };
    const wait = this.#pressure?.saturatedWithin(SATURATION_MEMORY_MS) ? this.#lastWake + SATURATED_WAKE_MS - performance.now() : 0;
    if (wait > 0) setTimeout(wake, wait).unref();
    else setImmediate(wake);
  }

  /** The columns the stage keeps in memory for audiences, and over how many profiles, as it last said. */
  columns(): ColumnStats {
    return this.#columns;
  }

  /** Resolves with the checkpoint once everything committed before the call is processed. */
  caughtUp(): Promise<number> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      if (this.#ended) return reject(new TandemError('unavailable', undefined, { cause: this.#ended }));
      this.#waiters.set(seq, { resolve, reject });
      this.#worker.postMessage({ type: 'drain', seq } satisfies StageRequest);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#restart);
    // A thread that has ended already would answer neither message nor exit.
    if (!this.#ended) await new Promise<void>((resolve) => {
      this.#worker.on('message', (reply: StageReply) => reply.type === 'closed' && resolve());
      this.#worker.once('exit', () => resolve());
      this.#worker.postMessage({ type: 'close' } satisfies StageRequest);
    });
    await this.#worker.terminate();
  }
}
