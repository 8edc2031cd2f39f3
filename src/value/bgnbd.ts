import betaln from '@stdlib/math-base-special-betaln';
import gammaln from '@stdlib/math-base-special-gammaln';
import hyp2f1 from '@stdlib/math-base-special-hyp2f1';
import { fitModel, logAddExp, type Fit, type Rfm } from './rfm.ts';

/**
 * BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way"): purchases follow a
 * Poisson process with rates ~ Gamma(r, α); after each purchase a customer drops out with
 * probability p ~ Beta(a, b).
 */
export type BgNbdParams = { r: number; alpha: number; a: number; b: number };

export function bgnbdLogLikelihood({ r, alpha, a, b }: BgNbdParams, d: Rfm): number {
  if (!(r > 0 && alpha > 0 && a > 0 && b > 0)) return -Infinity;
  const betaAB = betaln(a, b);
  const perX = d.xs.map((x) => ({
    common: gammaln(r + x) - gammaln(r) + r * Math.log(alpha),
    stay: betaln(a, b + x) - betaAB,
    drop: x > 0 ? betaln(a + 1, b + x - 1) - betaAB : -Infinity,
    power: r + x,
  }));
  const logAT = d.Ts.map((T) => Math.log(alpha + T));
  const logAtx = d.txs.map((tx) => Math.log(alpha + tx));
  let sum = 0;
  for (let i = 0; i < d.x.length; i++) {
    const t = perX[d.xi[i]!]!;
    const alive = t.stay - t.power * logAT[d.Ti[i]!]!;
    const dropped = t.drop === -Infinity ? -Infinity : t.drop - t.power * logAtx[d.txi[i]!]!;
    sum += d.weight[i]! * (t.common + logAddExp(alive, dropped));
  }
  return sum;
}

export const fitBgNbd = (d: Rfm): Fit<BgNbdParams> => fitModel<BgNbdParams>(d, ['r', 'alpha', 'a', 'b'], bgnbdLogLikelihood);

/** P(alive | x, t_x, T). */
export function bgnbdPAlive({ r, alpha, a, b }: BgNbdParams, x: number, tx: number, T: number): number {
  if (x === 0) return 1;
  return 1 / (1 + (a / (b + x - 1)) * Math.exp((r + x) * (Math.log(alpha + T) - Math.log(alpha + tx))));
}

/** Expected purchases in the next t, given x, t_x, T (FHL 2005, eq. 10). */
export function bgnbdExpected(p: BgNbdParams, t: number, x: number, tx: number, T: number): number {
  const { r, alpha, a, b } = p;
  const z = t / (alpha + T + t);
  const head = (a + b + x - 1) / (a - 1);
  const tail = 1 - Math.exp((r + x) * Math.log((alpha + T) / (alpha + T + t))) * hyp2f1(r + x, b + x, a + b + x - 1, z);
  const denominator = x > 0 ? 1 + (a / (b + x - 1)) * Math.exp((r + x) * (Math.log(alpha + T) - Math.log(alpha + tx))) : 1;
  return (head * tail) / denominator;
}

/** Expected purchases of a new customer in (0, t] (FHL 2005, eq. 9). */
export function bgnbdUnconditional({ r, alpha, a, b }: BgNbdParams, t: number): number {
  if (t <= 0) return 0;
  return ((a + b - 1) / (a - 1)) * (1 - Math.exp(r * Math.log(alpha / (alpha + t))) * hyp2f1(r, b, a + b - 1, t / (alpha + t)));
}
