/**
 * The purchase summary of the BTYD literature (Fader, Hardie & Lee 2005; the `lifetimes` and
 * BTYD libraries), per customer, from dated purchases: purchases on the same day count once
 * (their amounts summed); x = number of repeat purchase days in the calibration period (the
 * first purchase day excluded); t_x = time from the first to the last purchase day; T = time
 * from the first purchase day to the end of calibration; m = mean of the repeat purchase-day
 * totals. Times are whole days (UTC) divided by the unit (1 for days, 7 for weeks).
 */
export type Purchase = { customer: string; at: number; amount: number };
export type Unit = 'days' | 'weeks';
export type CustomerSummary = {
  customer: string;
  /** Repeat purchase days in the calibration period. */
  x: number;
  /** Time of the last purchase day, from the first (0 when x = 0). */
  tx: number;
  /** Time from the first purchase day to the end of calibration. */
  T: number;
  /** Mean total of the repeat purchase days (0 when x = 0). */
  monetary: number;
  /** First purchase day (days since 1970-01-01). */
  firstDay: number;
  /** Repeat purchase days after calibration, up to the holdout end (when one is given). */
  holdoutX: number;
  /** Days of repeat purchases after the first, calibration and holdout, for tracking charts. */
  repeatDays: number[];
};

const DAY = 86_400_000;
export const dayOf = (ms: number) => Math.floor(ms / DAY);
export const unitDays = (unit: Unit) => (unit === 'weeks' ? 7 : 1);

/**
 * Customers whose first purchase is on or before `calibrationEnd` (a day, inclusive), in the
 * order they first appear. Purchases after `holdoutEnd` (inclusive day) are ignored.
 */
export function summarize(purchases: Iterable<Purchase>, options: { unit: Unit; calibrationEnd: number; holdoutEnd?: number }): CustomerSummary[] {
  const end = dayOf(options.calibrationEnd);
  const holdoutEnd = options.holdoutEnd === undefined ? end : dayOf(options.holdoutEnd);
  const days = new Map<string, Map<number, number>>();
  for (const p of purchases) {
    const day = dayOf(p.at);
    if (day > holdoutEnd || !Number.isFinite(p.amount)) continue;
    let byDay = days.get(p.customer);
    if (!byDay) days.set(p.customer, (byDay = new Map()));
    byDay.set(day, (byDay.get(day) ?? 0) + p.amount);
  }
  const u = unitDays(options.unit);
  const out: CustomerSummary[] = [];
  for (const [customer, byDay] of days) {
    const sorted = [...byDay.keys()].sort((a, b) => a - b);
    const first = sorted[0]!;
    if (first > end) continue;
    const calibration = sorted.filter((d) => d <= end);
    const repeat = calibration.slice(1);
    const last = calibration[calibration.length - 1]!;
    out.push({
      customer,
      x: repeat.length,
      tx: (last - first) / u,
      T: (end - first) / u,
      monetary: repeat.length === 0 ? 0 : repeat.reduce((s, d) => s + byDay.get(d)!, 0) / repeat.length,
      firstDay: first,
      holdoutX: sorted.length - calibration.length,
      repeatDays: sorted.slice(1),
    });
  }
  return out;
}
