import { bgnbdExpected, bgnbdPAlive, bgnbdUnconditional, fitBgNbd, type BgNbdParams } from './bgnbd.ts';
import { expectedSpend, fitGammaGamma, toSpend, type GammaGammaParams } from './gamma-gamma.ts';
import { fitParetoNbd, paretoNbdExpected, paretoNbdPAlive, paretoNbdUnconditional, type ParetoNbdParams } from './pareto-nbd.ts';
import { toRfm, type Fit } from './rfm.ts';
import { dayOf, unitDays, type CustomerSummary, type Unit } from './summary.ts';

export type Model = 'bgnbd' | 'pareto_nbd';
export const MODELS: readonly Model[] = ['bgnbd', 'pareto_nbd'];

/** What a fit needs besides the purchases; the same settings score profiles afterwards. */
export type ValueSettings = {
  model: Model;
  unit: Unit;
  /** Months (of 30 days) the lifetime value looks ahead. */
  horizonMonths: number;
  /** Discount rate per month. */
  monthlyDiscount: number;
  /** Tiers by CLV quantile: at or above `high` is high, at or above `medium` is medium. */
  tiers: { high: number; medium: number };
};
export const DEFAULT_SETTINGS: ValueSettings = { model: 'bgnbd', unit: 'weeks', horizonMonths: 12, monthlyDiscount: 0.01, tiers: { high: 0.8, medium: 0.5 } };

export type PurchaseModel = { model: 'bgnbd'; params: BgNbdParams } | { model: 'pareto_nbd'; params: ParetoNbdParams };
export type Score = { expectedPurchases: number; pAlive: number; expectedSpend: number; clv: number; tier: 'high' | 'medium' | 'low' };

const expected = (m: PurchaseModel, t: number, x: number, tx: number, T: number) => (m.model === 'bgnbd' ? bgnbdExpected(m.params, t, x, tx, T) : paretoNbdExpected(m.params, t, x, tx, T));
const pAlive = (m: PurchaseModel, x: number, tx: number, T: number) => (m.model === 'bgnbd' ? bgnbdPAlive(m.params, x, tx, T) : paretoNbdPAlive(m.params, x, tx, T));
const unconditional = (m: PurchaseModel, t: number) => (m.model === 'bgnbd' ? bgnbdUnconditional(m.params, t) : paretoNbdUnconditional(m.params, t));

/**
 * One customer's value: expected purchases over the horizon, P(alive), expected spend per
 * purchase (Gamma-Gamma), and CLV = Σ over months of the purchases expected in that month ×
 * expected spend, discounted per month (as the `lifetimes` library computes it).
 */
export function scoreCustomer(m: PurchaseModel, spend: GammaGammaParams, s: ValueSettings, c: { x: number; tx: number; T: number; monetary: number }, thresholds: { high: number; medium: number }): Score {
  const month = 30 / unitDays(s.unit);
  const value = expectedSpend(spend, c.x, c.monetary);
  let clv = 0;
  let before = 0;
  for (let i = 1; i <= s.horizonMonths; i++) {
    const upTo = expected(m, i * month, c.x, c.tx, c.T);
    clv += ((upTo - before) * value) / (1 + s.monthlyDiscount) ** i;
    before = upTo;
  }
  const tier = clv >= thresholds.high ? 'high' : clv >= thresholds.medium ? 'medium' : 'low';
  return { expectedPurchases: before, pAlive: pAlive(m, c.x, c.tx, c.T), expectedSpend: value, clv, tier };
}

export type FitResult = {
  model: Model;
  params: BgNbdParams | ParetoNbdParams;
  logLikelihood: number;
  customers: number;
  seconds: number;
  spend: { params: GammaGammaParams; logLikelihood: number; customers: number; seconds: number };
  /** CLV at the tier quantiles over the customers fitted. */
  thresholds: { high: number; medium: number };
};

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Fewer customers than this, or fewer repeat buyers, give parameters that mean nothing. */
export const MIN_CUSTOMERS = 10;
export const MIN_REPEAT_BUYERS = 3;
export class TooFewCustomers extends Error {}

/** Fits the purchase model and Gamma-Gamma on summaries, and sets the tier thresholds. */
export function fitValue(summaries: CustomerSummary[], settings: ValueSettings): FitResult {
  const repeat = summaries.filter((c) => c.x > 0 && c.monetary > 0).length;
  if (summaries.length < MIN_CUSTOMERS || repeat < MIN_REPEAT_BUYERS) {
    throw new TooFewCustomers(`${summaries.length} customers, ${repeat} with repeat purchases: a fit needs at least ${MIN_CUSTOMERS} customers and ${MIN_REPEAT_BUYERS} repeat buyers.`);
  }
  const rfm = toRfm(summaries);
  const purchases: Fit<BgNbdParams | ParetoNbdParams> = settings.model === 'bgnbd' ? fitBgNbd(rfm) : fitParetoNbd(rfm);
  const spend = fitGammaGamma(toSpend(summaries));
  const model = { model: settings.model, params: purchases.params } as PurchaseModel;
  const clvs = summaries.map((c) => scoreCustomer(model, spend.params, settings, c, { high: Infinity, medium: Infinity }).clv).sort((a, b) => a - b);
  return {
    model: settings.model,
    params: purchases.params,
    logLikelihood: purchases.logLikelihood,
    customers: purchases.customers,
    seconds: purchases.seconds,
    spend: { params: spend.params, logLikelihood: spend.logLikelihood, customers: spend.customers, seconds: spend.seconds },
    thresholds: { high: quantile(clvs, settings.tiers.high), medium: quantile(clvs, settings.tiers.medium) },
  };
}

export type Diagnostics = {
  unit: Unit;
  /** Per period since the first customer's first purchase: repeat transactions, actual and expected. */
  tracking: Array<{ period: number; actual: number; expected: number; actualCumulative: number; expectedCumulative: number; holdout: boolean }>;
  /** Per calibration frequency (the last bucket is "or more"): mean holdout transactions, actual and expected. */
  conditional: Array<{ x: string; customers: number; actual: number; expected: number }>;
  holdout: { periods: number; actual: number; expected: number };
};

/**
 * Calibration and holdout fit: repeat transactions per period across the cohort (each customer
 * contributes the model's unconditional expectation from their first purchase on), and, per
 * calibration frequency, mean holdout transactions against the conditional expectation.
 */
export function diagnose(summaries: CustomerSummary[], fit: { model: Model; params: BgNbdParams | ParetoNbdParams }, options: { unit: Unit; calibrationEnd: number; holdoutEnd: number }): Diagnostics {
  const m = fit as PurchaseModel;
  const u = unitDays(options.unit);
  const start = Math.min(...summaries.map((s) => s.firstDay));
  const endDay = dayOf(options.holdoutEnd);
  const calibrationDay = dayOf(options.calibrationEnd);
  const periods = Math.ceil((endDay - start + 1) / u);
  const actual = new Array<number>(periods).fill(0);
  for (const s of summaries) for (const d of s.repeatDays) if (d <= endDay) actual[Math.floor((d - start) / u)]!++;
  const tracking: Diagnostics['tracking'] = [];
  let actualCumulative = 0;
  let previous = 0;
  for (let p = 0; p < periods; p++) {
    const at = (p + 1) * u + start; // end of the period, in days
    let cumulative = 0;
    for (const s of summaries) cumulative += unconditional(m, Math.max(0, at - s.firstDay - 1) / u);
    actualCumulative += actual[p]!;
    tracking.push({ period: p + 1, actual: actual[p]!, expected: cumulative - previous, actualCumulative, expectedCumulative: cumulative, holdout: at - 1 > calibrationDay });
    previous = cumulative;
  }
  const holdoutLength = (endDay - calibrationDay) / u;
  const buckets = new Map<string, { customers: number; actual: number; expected: number }>();
  let expectedTotal = 0;
  for (const s of summaries) {
    const key = s.x >= 7 ? '7+' : String(s.x);
    const e = expected(m, holdoutLength, s.x, s.tx, s.T);
    expectedTotal += e;
    const b = buckets.get(key) ?? { customers: 0, actual: 0, expected: 0 };
    b.customers++;
    b.actual += s.holdoutX;
    b.expected += e;
    buckets.set(key, b);
  }
  const conditional = [...buckets].sort((a, b) => (a[0] === '7+' ? 1 : b[0] === '7+' ? -1 : Number(a[0]) - Number(b[0]))).map(([x, b]) => ({ x, customers: b.customers, actual: b.actual / b.customers, expected: b.expected / b.customers }));
  return { unit: options.unit, tracking, conditional, holdout: { periods: holdoutLength, actual: summaries.reduce((n, s) => n + s.holdoutX, 0), expected: expectedTotal } };
}

/** The cumulative tracking chart as an SVG image: actual (solid) against expected (dashed), holdout shaded. */
export function trackingChart(d: Diagnostics, title: string): string {
  const [w, h, left, bottom, top, right] = [720, 360, 60, 40, 30, 20];
  const points = d.tracking;
  const maxY = Math.max(1, ...points.map((p) => Math.max(p.actualCumulative, p.expectedCumulative)));
  const x = (i: number) => left + ((w - left - right) * i) / Math.max(1, points.length);
  const y = (v: number) => h - bottom - ((h - bottom - top) * v) / maxY;
  const line = (pick: (p: (typeof points)[number]) => number) => points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i + 1).toFixed(1)},${y(pick(p)).toFixed(1)}`).join(' ');
  const firstHoldout = points.findIndex((p) => p.holdout);
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${left - 6}" y="${y(maxY * f) + 4}" text-anchor="end" font-size="11">${Math.round(maxY * f)}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">
<rect width="${w}" height="${h}" fill="white"/>
${firstHoldout >= 0 ? `<rect x="${x(firstHoldout)}" y="${top}" width="${x(points.length) - x(firstHoldout)}" height="${h - top - bottom}" fill="#f0f0f0"/><text x="${x(firstHoldout) + 4}" y="${top + 14}" font-size="11">holdout</text>` : ''}
<text x="${left}" y="18" font-size="13">${esc(title)}</text>
<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" stroke="black"/><line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" stroke="black"/>
${ticks}<text x="${(w + left) / 2}" y="${h - 8}" text-anchor="middle" font-size="11">${d.unit} since the cohort's first purchase</text>
<path d="${line((p) => p.actualCumulative)}" fill="none" stroke="#1f5fa8" stroke-width="2"/>
<path d="${line((p) => p.expectedCumulative)}" fill="none" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>
<text x="${w - right - 150}" y="${h - bottom - 30}" font-size="11" fill="#1f5fa8">actual repeat transactions</text>
<text x="${w - right - 150}" y="${h - bottom - 14}" font-size="11" fill="#c0392b">expected (model)</text>
</svg>
`;
}
