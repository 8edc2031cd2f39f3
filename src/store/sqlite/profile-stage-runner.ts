import { Worker } from 'node:worker_threads';
import { TandemError } from '../../errors.ts';
import type { ColumnStats } from '../ports.ts';
import type { StageOptions, StageReply, StageRequest } from './profile-stage-worker.ts';

/**
 * The main thread's handle on the profile stage's thread. Should the thread end (a crash), those
 * waiting for it and those who wait later are answered `unavailable` rather than never.
 */
export class ProfileStageRunner {
  readonly #worker: Worker;
  readonly #waiters = new Map<number, { resolve: (checkpoint: number) => void; reject: (err: unknown) => void }>();
  /** Set once the thread has ended. */
  #ended: Error | undefined;
  readonly #onError: (error: string) => void;
  #seq = 0;
  #closed = false;
  #notifying = false;
  #columns: ColumnStats = { columns: 0, profiles: 0 };

  /** `script` is the thread's code: profile-stage-worker.ts, or a stand-in in tests. */
  constructor(options: StageOptions, onError: (error: string) => void = () => {}, script = new URL('./profile-stage-worker.ts', import.meta.url)) {
    this.#onError = onError;
    this.#worker = new Worker(script, { workerData: options });
    this.#worker.on('message', (reply: StageReply) => {
      if (reply.type === 'drained') {
        this.#waiters.get(reply.seq)?.resolve(reply.checkpoint);
        this.#waiters.delete(reply.seq);
      } else if (reply.type === 'failed') this.#onError(reply.error);
      else if (reply.type === 'columns') this.#columns = { columns: reply.columns, profiles: reply.profiles };
    });
    this.#worker.on('error', (err) => this.#onError(String(err)));
    this.#worker.on('exit', (code) => {
      this.#ended = new Error(`profile stage thread exited with ${code}`);
      if (!this.#closed) this.#onError(this.#ended.message);
      for (const w of this.#waiters.values()) w.reject(new TandemError('unavailable', undefined, { cause: this.#ended }));
      this.#waiters.clear();
    });
  }

  /** New records were committed to the log: one wake-up per turn of the event loop is enough. */
  notify(): void {
    if (this.#closed || this.#notifying) return;
    this.#notifying = true;
    setImmediate(() => {
      this.#notifying = false;
      if (!this.#closed) this.#worker.postMessage({ type: 'tick' } satisfies StageRequest);
    });
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
    // A thread that has ended already would answer neither message nor exit.
    if (!this.#ended) await new Promise<void>((resolve) => {
      this.#worker.on('message', (reply: StageReply) => reply.type === 'closed' && resolve());
      this.#worker.once('exit', () => resolve());
      this.#worker.postMessage({ type: 'close' } satisfies StageRequest);
    });
    await this.#worker.terminate();
  }
}
