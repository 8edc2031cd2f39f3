import gammaln from '@stdlib/math-base-special-gammaln';
import { minimize } from './optimize.ts';
import { starts, SUBSAMPLE, type Fit } from './rfm.ts';

/**
 * Gamma-Gamma spend (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): a
 * customer's transaction values are Gamma(p, ν) around their mean, with ν ~ Gamma(q, γ) across
 * customers. Fitted on repeat buyers: x > 0 repeat purchase days with mean value m.
 */
export type GammaGammaParams = { p: number; q: number; gamma: number };
export type Spend = { x: Float64Array; m: Float64Array };

export function toSpend(rows: Iterable<{ x: number; monetary: number }>): Spend {
  const kept = [...rows].filter((r) => r.x > 0 && r.monetary > 0);
  return { x: Float64Array.from(kept, (r) => r.x), m: Float64Array.from(kept, (r) => r.monetary) };
}

export function gammaGammaLogLikelihood({ p, q, gamma }: GammaGammaParams, d: Spend): number {
  if (!(p > 0 && q > 0 && gamma > 0)) return -Infinity;
  const shared = -gammaln(q) + q * Math.log(gamma);
  // Terms that depend on x alone, once per distinct x (there are few).
  const perX = new Map<number, number>();
  let sum = 0;
  for (let i = 0; i < d.x.length; i++) {
    const x = d.x[i]!;
    const px = p * x;
    let fx = perX.get(x);
    if (fx === undefined) perX.set(x, (fx = shared + gammaln(px + q) - gammaln(px) + px * Math.log(x)));
    const m = d.m[i]!;
    sum += fx + (px - 1) * Math.log(m) - (px + q) * Math.log(gamma + m * x);
  }
  return sum;
}

export function fitGammaGamma(d: Spend): Fit<GammaGammaParams> {
  const started = performance.now();
  const params = (v: number[]): GammaGammaParams => ({ p: Math.exp(v[0]!), q: Math.exp(v[1]!), gamma: Math.exp(v[2]!) });
  const f = (data: Spend) => (v: number[]) => -gammaGammaLogLikelihood(params(v), data);
  let m = minimize(f(d.x.length > SUBSAMPLE ? every(d, Math.ceil(d.x.length / SUBSAMPLE)) : d), starts(3));
  // On large data the subsample's optimum is the start of a short polish on all of it.
  if (d.x.length > SUBSAMPLE) m = { ...minimize(f(d), [m.x], { step: 0.05 }), evaluations: m.evaluations };
  return { params: params(m.x), logLikelihood: gammaGammaLogLikelihood(params(m.x), d), customers: d.x.length, evaluations: m.evaluations, seconds: (performance.now() - started) / 1000 };
}

const every = (d: Spend, k: number): Spend => ({ x: d.x.filter((_, i) => i % k === 0), m: d.m.filter((_, i) => i % k === 0) });

/** Expected mean transaction value of a customer with x repeat purchases of mean m. */
export function expectedSpend({ p, q, gamma }: GammaGammaParams, x: number, m: number): number {
  if (x <= 0) return (p * gamma) / (q - 1);
  return (p * (gamma + x * m)) / (p * x + q - 1);
}
