import { Worker } from 'node:worker_threads';
import { movable } from '../bytes.ts';
import { TandemError, type ErrorCode } from '../errors.ts';
import type { StoreLocation } from '../store/ports.ts';
import type { JudgeInput, Judged } from './judge.ts';
import type { TimePolicy } from './normalize.ts';

export type JudgeWorkerOptions = { store: StoreLocation; policy: TimePolicy; maxBodyBytes: number };
export type JudgeRequest = { type: 'judge'; seq: number; input: JudgeInput } | { type: 'close' };
export type JudgeReply =
  | { ready: true }
  | { seq: number; judged: Judged }
  | { seq: number; error: { code: ErrorCode; detail: string | undefined } }
  | { seq: number; failure: string };

type Pending = { bytes: number; resolve: (judged: Judged) => void; reject: (err: unknown) => void };
type Thread = { worker: Worker; pending: Map<number, Pending>; ready: Promise<void>; isReady: boolean; drained?: () => void };

/** After a thread that died before it was ready, how long until another is started: doubling from this… */
const FIRST_PAUSE_MS = 250;
/** …up to this. */
const LONGEST_PAUSE_MS = 30_000;

/**
 * Ingest threads that judge requests (judge-worker.ts) so that the HTTP thread only receives
 * bodies and answers: JSON parsing and per-event checks, the bulk of a request's CPU, run
 * beside it. Each request goes to the ready thread with the fewest waiting; its bytes are moved
 * there and back, not copied. A thread that dies fails what it held (503, nothing
 * acknowledged) and is replaced. One that dies before it is ready (it cannot open the store)
 * is replaced only after a pause that doubles each time, so a broken start does not spawn a
 * thread per request; meanwhile `usable()` is false and the caller judges on its own thread.
 */
export class JudgePool {
  readonly #options: JudgeWorkerOptions;
  readonly #script: URL;
  readonly #threads: Array<Thread | undefined>;
  /** Per slot: no new thread before this time, and the pause to wait after the next failed start. */
  readonly #pauses: Array<{ until: number; next: number }>;
  #starts = 0;
  #seq = 0;
  #pendingBytes = 0;
  #closed = false;

  /** `script` is the thread's code: judge-worker.ts, or a stand-in around it in tests. */
  constructor(options: JudgeWorkerOptions, threads: number, script = new URL('./judge-worker.ts', import.meta.url)) {
    this.#options = options;
    this.#script = script;
    this.#threads = new Array(Math.max(1, threads)).fill(undefined);
    this.#pauses = this.#threads.map(() => ({ until: 0, next: FIRST_PAUSE_MS }));
  }

  /** How many threads were started so far (replacements included). */
  starts(): number {
    return this.#starts;
  }

  /**
   * Whether a thread is ready to take a request now. Starts replacements for threads that died
   * (each once its pause is over), in the background.
   */
  usable(): boolean {
    let ready = false;
    this.#threads.forEach((thread, i) => {
      if (thread?.isReady) ready = true;
      else if (!thread && !this.#closed && Date.now() >= this.#pauses[i]!.until) this.#thread(i);
    });
    return ready;
  }

  #thread(i: number): Thread {
    const existing = this.#threads[i];
    if (existing) return existing;
    const worker = new Worker(this.#script, { workerData: this.#options });
    this.#starts++;
    let started = () => {};
    const thread: Thread = { worker, pending: new Map(), ready: new Promise((resolve) => (started = resolve)), isReady: false };
    worker.on('message', (reply: JudgeReply) => {
      if ('ready' in reply) {
        thread.isReady = true;
        this.#pauses[i] = { until: 0, next: FIRST_PAUSE_MS };
        return started();
      }
      const p = thread.pending.get(reply.seq);
      if (!p) return;
      thread.pending.delete(reply.seq);
      this.#pendingBytes -= p.bytes;
      if (thread.pending.size === 0) thread.drained?.();
      if ('judged' in reply) p.resolve(reply.judged);
      else if ('error' in reply) p.reject(new TandemError(reply.error.code, reply.error.detail));
      else p.reject(new Error(reply.failure));
    });
    const fail = (err: unknown) => {
      started();
      if (this.#threads[i] !== thread) return;
      this.#threads[i] = undefined;
      if (!thread.isReady) {
        const pause = this.#pauses[i]!;
        this.#pauses[i] = { until: Date.now() + pause.next, next: Math.min(pause.next * 2, LONGEST_PAUSE_MS) };
      }
      for (const p of thread.pending.values()) {
        this.#pendingBytes -= p.bytes;
        p.reject(new TandemError('unavailable', undefined, { cause: err }));
      }
      thread.pending.clear();
      thread.drained?.();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`ingest thread exited with ${code}`)));
    this.#threads[i] = thread;
    return thread;
  }

  /**
   * Judges a request on a thread. The request's bytes are moved there and come back as the
   * judged body: `input.raw` is unusable afterwards when it was the only view of its memory
   * (a request body is), and copied first otherwise (a slice of a shared pool).
   */
  judge(input: JudgeInput): Promise<Judged> {
    if (this.#closed) return Promise.reject(new TandemError('unavailable'));
    // The ready thread with the fewest waiting; else one to start, unless every slot is pausing.
    let chosen = -1;
    const waiting = (i: number) => this.#threads[i]?.pending.size ?? 0;
    this.#threads.forEach((thread, i) => {
      if (thread?.isReady && (chosen < 0 || waiting(i) < waiting(chosen))) chosen = i;
    });
    if (chosen < 0) chosen = this.#threads.findIndex((thread, i) => thread !== undefined || Date.now() >= this.#pauses[i]!.until);
    if (chosen < 0) return Promise.reject(new TandemError('unavailable'));
    const thread = this.#thread(chosen);
    return new Promise((resolve, reject) => {
      const seq = ++this.#seq;
      const raw = movable(input.raw);
      thread.pending.set(seq, { bytes: raw.byteLength, resolve, reject });
      this.#pendingBytes += raw.byteLength;
      try {
        thread.worker.postMessage({ type: 'judge', seq, input: { ...input, raw } } satisfies JudgeRequest, [raw.buffer as ArrayBuffer]);
      } catch (err) {
        // Not posted (a value that cannot be cloned): nothing will answer it, so it must not be
        // left waiting, where it would count towards the limit and hold up close() for ever.
        thread.pending.delete(seq);
        this.#pendingBytes -= raw.byteLength;
        if (thread.pending.size === 0) thread.drained?.();
        reject(err);
      }
    });
  }

  /** Starts every thread; resolves once each can judge (a server waits for this before it listens). */
  async start(): Promise<void> {
    await Promise.all(this.#threads.map((_, i) => this.#thread(i).ready));
  }

  /** Bytes handed to the threads and not yet answered. */
  pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Stops the threads once they have answered what they hold. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#threads.map(async (thread) => {
        if (!thread) return;
        if (thread.pending.size > 0) await new Promise<void>((resolve) => (thread.drained = resolve));
        thread.worker.postMessage({ type: 'close' } satisfies JudgeRequest);
        await thread.worker.terminate();
      }),
    );
    this.#threads.fill(undefined);
  }
}
