import gammaln from '@stdlib/math-base-special-gammaln';
import { minimize } from './optimize.ts';
import { starts, type Fit } from './rfm.ts';

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
  let sum = 0;
  for (let i = 0; i < d.x.length; i++) {
    const x = d.x[i]!;
    const m = d.m[i]!;
    const px = p * x;
    sum += shared + gammaln(px + q) - gammaln(px) + (px - 1) * Math.log(m) + px * Math.log(x) - (px + q) * Math.log(gamma + m * x);
  }
  return sum;
}

export function fitGammaGamma(d: Spend): Fit<GammaGammaParams> {
  const started = performance.now();
  const params = (v: number[]): GammaGammaParams => ({ p: Math.exp(v[0]!), q: Math.exp(v[1]!), gamma: Math.exp(v[2]!) });
  const m = minimize((v) => -gammaGammaLogLikelihood(params(v), d), starts(3));
  return { params: params(m.x), logLikelihood: -m.value, customers: d.x.length, evaluations: m.evaluations, seconds: (performance.now() - started) / 1000 };
}

/** Expected mean transaction value of a customer with x repeat purchases of mean m. */
export function expectedSpend({ p, q, gamma }: GammaGammaParams, x: number, m: number): number {
  if (x <= 0) return (p * gamma) / (q - 1);
  return (p * (gamma + x * m)) / (p * x + q - 1);
}
