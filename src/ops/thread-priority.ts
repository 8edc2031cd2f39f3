import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** For background threads (the profile stage): weight 110 against 1024, about a tenth of a contended core. */
export const BACKGROUND_NICE = 10;

/**
 * Lowers the calling worker thread's CPU priority (its nice value), so that when the cores are
 * all busy the scheduler gives this thread's work only what is left over. Linux only: a thread's
 * id comes from /proc/thread-self, and setpriority on a thread id applies to that thread alone.
 * Returns whether it took effect; elsewhere, or on the main thread, it does nothing.
 */
export function lowerThreadPriority(nice: number): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid === process.pid) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
