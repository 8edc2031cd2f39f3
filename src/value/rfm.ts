/**
 * Frequency/recency/age columns for fitting, with identical customers grouped (weight = how many
 * share the row): summaries built from dated purchases repeat a lot, and each distinct row costs
 * one likelihood term. `xs`/`xi` list the distinct frequencies, for terms that depend on x alone.
 */
export type Rfm = { x: Float64Array; tx: Float64Array; T: Float64Array; weight: Float64Array; xs: number[]; xi: Int32Array; customers: number };

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
  const xs = [...new Set(list.map((g) => g.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  return {
    x: Float64Array.from(list, (g) => g.x),
    tx: Float64Array.from(list, (g) => g.tx),
    T: Float64Array.from(list, (g) => g.T),
    weight: Float64Array.from(list, (g) => g.n),
    xs,
    xi: Int32Array.from(list, (g) => index.get(g.x)!),
    customers,
  };
}

/** log(e^a + e^b) without overflow. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

export type Fit<P> = { params: P; logLikelihood: number; customers: number; evaluations: number; seconds: number };

/** Starting points on log-parameters: the origin and a spread around it (deterministic). */
export function starts(dimensions: number): number[][] {
  const out = [new Array<number>(dimensions).fill(0)];
  for (const shift of [-1, 1, 2]) out.push(Array.from({ length: dimensions }, (_, i) => (i % 2 === 0 ? shift : -shift / 2)));
  return out;
}
