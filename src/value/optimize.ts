/**
 * Nelder–Mead simplex minimisation (Nelder & Mead 1965, with the standard coefficients), for
 * likelihoods on log-parameters: derivative-free, so it needs nothing but the function, and it
 * copes with the flat ridges these likelihoods have. `minimize` restarts from several points and
 * polishes the best one by restarting the simplex around it.
 */
export type Minimum = { x: number[]; value: number; evaluations: number };

export type NelderMeadOptions = { step?: number; maxEvaluations?: number; tolerance?: number; sizeTolerance?: number; restarts?: number };

export function nelderMead(f: (x: number[]) => number, start: number[], { step = 0.5, maxEvaluations = 5000, tolerance = 1e-10, sizeTolerance = 1e-8 }: NelderMeadOptions = {}): Minimum {
  const n = start.length;
  let evaluations = 0;
  const value = (x: number[]) => {
    evaluations++;
    const v = f(x);
    return Number.isFinite(v) ? v : Infinity;
  };
  let simplex = [start, ...start.map((_, i) => start.map((v, j) => (i === j ? v + step : v)))].map((x) => ({ x, v: value(x) }));
  const combine = (a: number[], b: number[], t: number) => a.map((ai, i) => ai + t * (b[i]! - ai));
  while (evaluations < maxEvaluations) {
    simplex.sort((a, b) => a.v - b.v);
    const best = simplex[0]!;
    const worst = simplex[n]!;
    const spread = Math.abs(worst.v - best.v);
    const size = Math.max(...simplex.slice(1).map((p) => Math.max(...p.x.map((v, i) => Math.abs(v - best.x[i]!)))));
    if (spread <= tolerance * (Math.abs(best.v) + tolerance) && size < sizeTolerance) break;
    if (spread === 0 && size < 1e-12) break;
    const centroid = Array.from({ length: n }, (_, i) => simplex.slice(0, n).reduce((s, p) => s + p.x[i]!, 0) / n);
    const reflected = combine(centroid, worst.x, -1);
    const rv = value(reflected);
    if (rv < best.v) {
      const expanded = combine(centroid, worst.x, -2);
      const ev = value(expanded);
      simplex[n] = ev < rv ? { x: expanded, v: ev } : { x: reflected, v: rv };
    } else if (rv < simplex[n - 1]!.v) {
      simplex[n] = { x: reflected, v: rv };
    } else {
      const outside = rv < worst.v;
      const contracted = combine(centroid, worst.x, outside ? -0.5 : 0.5);
      const cv = value(contracted);
      if (cv < (outside ? rv : worst.v)) simplex[n] = { x: contracted, v: cv };
      else simplex = simplex.map((p, i) => (i === 0 ? p : { x: combine(best.x, p.x, 0.5), v: value(combine(best.x, p.x, 0.5)) }));
    }
  }
  simplex.sort((a, b) => a.v - b.v);
  return { x: simplex[0]!.x, value: simplex[0]!.v, evaluations };
}

/** The best of several starts, each polished by restarting a small simplex at its minimum. */
export function minimize(f: (x: number[]) => number, starts: number[][], options: NelderMeadOptions = {}): Minimum {
  let best: Minimum | undefined;
  let evaluations = 0;
  for (const start of starts) {
    let m = nelderMead(f, start, options);
    evaluations += m.evaluations;
    for (let restart = 0; restart < (options.restarts ?? 3); restart++) {
      const again = nelderMead(f, m.x, { ...options, step: Math.min(0.05, options.step ?? 0.05) });
      evaluations += again.evaluations;
      const improved = m.value - again.value > 1e-9;
      if (again.value <= m.value) m = again;
      if (!improved) break;
    }
    if (!best || m.value < best.value) best = m;
  }
  return { ...best!, evaluations };
}
