import gammaln from '@stdlib/math-base-special-gammaln';
import hyp2f1 from '@stdlib/math-base-special-hyp2f1';
import { fitModel, logAddExp, type Fit, type Rfm } from './rfm.ts';

/**
 * Pareto/NBD (Schmittlein, Morrison & Colombo 1987): purchases at rates ~ Gamma(r, α) while
 * alive; lifetimes exponential with rates ~ Gamma(s, β). The likelihood follows Fader & Hardie's
 * note 008, in log space; its Gaussian hypergeometric terms go through Euler's transformation,
 * 2F1(a, b; c; z) = (1 − z)^(c−a−b) 2F1(c − a, c − b; c; z), whose first parameter is 1 here, so
 * they stay finite for large x and z near 1.
 */
export type ParetoNbdParams = { r: number; alpha: number; s: number; beta: number };

/** log A0 of note 008: the lifetime ending between t_x and T (−∞ when t_x = T). */
function logA0({ r, alpha, s, beta }: ParetoNbdParams, x: number, tx: number, T: number): number {
  const k = r + s + x;
  // The larger of α, β carries the series; b' is c − b of the untransformed 2F1.
  const [big, small, b2] = alpha >= beta ? [alpha, beta, r + x] : [beta, alpha, s + 1];
  const exponent = alpha >= beta ? -s : 1 - r - x; // c − a − b of the untransformed 2F1
  const logF = (y: number) => {
    const z = (big - small) / y;
    return exponent * Math.log1p(-z) + Math.log(hyp2f1(1, b2, k + 1, z)) - k * Math.log(y);
  };
  const first = logF(big + tx);
  const second = logF(big + T);
  if (!(first > second)) return -Infinity;
  return first + Math.log1p(-Math.exp(second - first));
}

export function paretoNbdLogLikelihood(p: ParetoNbdParams, d: Rfm): number {
  const { r, alpha, s, beta } = p;
  if (!(r > 0 && alpha > 0 && s > 0 && beta > 0)) return -Infinity;
  const perX = d.xs.map((x) => gammaln(r + x) - gammaln(r) + r * Math.log(alpha) + s * Math.log(beta));
  let sum = 0;
  for (let i = 0; i < d.x.length; i++) {
    const x = d.x[i]!;
    const T = d.T[i]!;
    const alive = -(r + x) * Math.log(alpha + T) - s * Math.log(beta + T);
    const died = Math.log(s / (r + s + x)) + logA0(p, x, d.tx[i]!, T);
    sum += d.weight[i]! * (perX[d.xi[i]!]! + logAddExp(alive, died));
  }
  return sum;
}

export const fitParetoNbd = (d: Rfm): Fit<ParetoNbdParams> => fitModel<ParetoNbdParams>(d, ['r', 'alpha', 's', 'beta'], paretoNbdLogLikelihood);

/** P(alive | x, t_x, T). */
export function paretoNbdPAlive(p: ParetoNbdParams, x: number, tx: number, T: number): number {
  const { r, alpha, s, beta } = p;
  const ratio = Math.log(s / (r + s + x)) + (r + x) * Math.log(alpha + T) + s * Math.log(beta + T) + logA0(p, x, tx, T);
  return 1 / (1 + Math.exp(ratio));
}

/** Expected purchases in the next t, given x, t_x, T. */
export function paretoNbdExpected(p: ParetoNbdParams, t: number, x: number, tx: number, T: number): number {
  const { r, alpha, s, beta } = p;
  return paretoNbdPAlive(p, x, tx, T) * (((r + x) * (beta + T)) / ((alpha + T) * (s - 1))) * (1 - Math.exp((s - 1) * Math.log((beta + T) / (beta + T + t))));
}

/** Expected purchases of a new customer in (0, t]. */
export function paretoNbdUnconditional({ r, alpha, s, beta }: ParetoNbdParams, t: number): number {
  if (t <= 0) return 0;
  return ((r * beta) / (alpha * (s - 1))) * (1 - Math.exp((s - 1) * Math.log(beta / (beta + t))));
}
