import { minimize } from './optimize.ts';

/**
 * Frequency/recency/age columns for fitting, with identical customers grouped (weight = how many
 * share the row): summaries built from dated purchases repeat a lot, and each distinct row costs
 * one likelihood term. `xs`/`xi` list the distinct frequencies, for terms that depend on x alone.
 */
export type Rfm = {
  x: Float64Array; tx: Float64Array; T: Float64Array; weight: Float64Array; customers: number;
  /** Distinct values of x, t_x and T and each row's index into them: terms that depend on one of them are computed once per value. */
  xs: number[]; xi: Int32Array; txs: Float64Array; txi: Int32Array; Ts: Float64Array; Ti: Int32Array;
};

export function toRfm(rows: Iterable<{ x: number; tx: number; T: number }>): Rfm {
  const groups = new Map<string, { x: number; tx: number; T: number; n: number }>();
  let customers = 0;
  for (const r of rows) {
    customers++;
    const key = `${r.x}|${r.tx}|${r.T}`;
    const g = groups.get(key);
    if (g) g.n++;
    else groups.set(key, { x: r.x, tx: r.tx, T: r.T, n: 1 });
  }
  const list = [...groups.values()];
  const distinct = (values: number[]) => {
    const sorted = [...new Set(values)].sort((a, b) => a - b);
    const index = new Map(sorted.map((v, i) => [v, i]));
    return { values: sorted, index: Int32Array.from(values, (v) => index.get(v)!) };
  };
  const xs = distinct(list.map((g) => g.x));
  const txs = distinct(list.map((g) => g.tx));
  const Ts = distinct(list.map((g) => g.T));
  return {
    x: Float64Array.from(list, (g) => g.x),
    tx: Float64Array.from(list, (g) => g.tx),
    T: Float64Array.from(list, (g) => g.T),
    weight: Float64Array.from(list, (g) => g.n),
    customers,
    xs: xs.values,
    xi: xs.index,
    txs: Float64Array.from(txs.values),
    txi: txs.index,
    Ts: Float64Array.from(Ts.values),
    Ti: Ts.index,
  };
}

/**
 * About `size` of the customers, taken at even steps through the rows: a fit on it gives a
 * starting point close to the full data's optimum, so the full fit needs only a short polish.
 */
export function subsample(d: Rfm, size: number): Rfm {
  const every = d.customers / size;
  const rows: Array<{ x: number; tx: number; T: number }> = [];
  let next = 0;
  let seen = 0;
  for (let i = 0; i < d.x.length; i++) {
    seen += d.weight[i]!;
    while (next < seen) {
      rows.push({ x: d.x[i]!, tx: d.tx[i]!, T: d.T[i]! });
      next += every;
    }
  }
  return toRfm(rows);
}

/** log(e^a + e^b) without overflow. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

export type Fit<P> = { params: P; logLikelihood: number; customers: number; evaluations: number; seconds: number };

/**
 * Fits on log-parameters: on small data from several starts; on large data (more than
 * `SUBSAMPLE` distinct rows) first on a subsample from those starts, then on all of it from there.
 */
export const SUBSAMPLE = 20_000;
export function fitLogParameters(d: Rfm, dimensions: number, negLogLikelihood: (data: Rfm, v: number[]) => number): { x: number[]; value: number; evaluations: number } {
  if (d.x.length <= SUBSAMPLE) return minimize((v) => negLogLikelihood(d, v), starts(dimensions));
  const sub = subsample(d, SUBSAMPLE);
  const rough = minimize((v) => negLogLikelihood(sub, v), starts(dimensions));
  // The subsample's optimum is close: a small simplex, parameters to a relative 1e-6, one restart.
  const full = minimize((v) => negLogLikelihood(d, v), [rough.x], { step: 0.05, sizeTolerance: 1e-6, restarts: 1 });
  return { ...full, evaluations: rough.evaluations + full.evaluations };
}

/** A model's maximum-likelihood fit: its parameters, all positive, are optimised as logarithms. */
export function fitModel<P extends Record<string, number>>(d: Rfm, names: Array<keyof P & string>, logLikelihood: (p: P, d: Rfm) => number): Fit<P> {
  const started = performance.now();
  const params = (v: number[]) => Object.fromEntries(names.map((name, i) => [name, Math.exp(v[i]!)])) as P;
  const m = fitLogParameters(d, names.length, (data, v) => -logLikelihood(params(v), data));
  return { params: params(m.x), logLikelihood: -m.value, customers: d.customers, evaluations: m.evaluations, seconds: (performance.now() - started) / 1000 };
}

/** Starting points on log-parameters: the origin and a spread around it (deterministic). */
export function starts(dimensions: number): number[][] {
  const out = [new Array<number>(dimensions).fill(0)];
  for (const shift of [-1, 1, 2]) out.push(Array.from({ length: dimensions }, (_, i) => (i % 2 === 0 ? shift : -shift / 2)));
  return out;
}
