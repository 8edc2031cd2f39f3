/**
 * npm run bench:clv — fits BG/NBD, Pareto/NBD and Gamma-Gamma on BENCH_CUSTOMERS (default
 * 1,000,000) synthetic customers drawn from known parameters (CDNOW's published estimates),
 * T from 1 to 52 weeks, purchase times on whole hours (BENCH_GRID_HOURS, default 1; same-slot
 * purchases count once). Reports the fit time per model and the relative error of each recovered
 * parameter. BENCH_MODELS picks some of bgnbd,gamma_gamma,pareto_nbd.
 * Baseline in the same run: one evaluation of each log-likelihood over all customers (the
 * least any fitting method repeats many times). Target: BG/NBD under 10 s, parameters within 2%.
 */
import { bgnbdLogLikelihood, fitBgNbd, type BgNbdParams } from '../src/value/bgnbd.ts';
import { fitGammaGamma, gammaGammaLogLikelihood, toSpend, type GammaGammaParams } from '../src/value/gamma-gamma.ts';
import { fitParetoNbd, paretoNbdLogLikelihood, type ParetoNbdParams } from '../src/value/pareto-nbd.ts';
import { toRfm } from '../src/value/rfm.ts';
import { rng } from './lib/random.ts';

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 1_000_000);
const BG: BgNbdParams = { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
const PN: ParetoNbdParams = { r: 0.553, alpha: 10.578, s: 0.606, beta: 11.669 };
const GG: GammaGammaParams = { p: 6.25, q: 3.74, gamma: 15.44 };
const GRID = 168 / Number(process.env.BENCH_GRID_HOURS ?? 1);
const MODELS = (process.env.BENCH_MODELS ?? 'bgnbd,gamma_gamma,pareto_nbd').split(',');
/** A time on the grid (weeks), as summaries of timestamped purchases are. */
const day = (weeks: number) => Math.round(weeks * GRID) / GRID;

type Row = { x: number; tx: number; T: number; monetary: number };
function draw(model: 'bgnbd' | 'pareto_nbd', seed: number): Row[] {
  const r = rng(seed);
  const rows: Row[] = new Array(CUSTOMERS);
  for (let i = 0; i < CUSTOMERS; i++) {
    const T = day(1 + r.uniform() * 51);
    let x = 0;
    let last = 0;
    if (model === 'bgnbd') {
      const lambda = r.gamma(BG.r, BG.alpha);
      const p = r.beta(BG.a, BG.b);
      // After each repeat purchase the customer drops out with probability p.
      for (let t = r.exponential(lambda); t <= T; t += r.exponential(lambda)) {
        if (day(t) > last) x++;
        last = day(t);
        if (r.uniform() < p) break;
      }
    } else {
      const lambda = r.gamma(PN.r, PN.alpha);
      const end = Math.min(T, r.exponential(r.gamma(PN.s, PN.beta)));
      for (let t = r.exponential(lambda); t <= end; t += r.exponential(lambda)) {
        if (day(t) > last) x++;
        last = day(t);
      }
    }
    const tx = x === 0 ? 0 : Math.min(last, T);
    // Spend: each transaction ~ Gamma(p, ν), ν ~ Gamma(q, γ); the mean of x of them is Gamma(px, ν)/x.
    const monetary = x > 0 ? r.gamma(GG.p * x, r.gamma(GG.q, GG.gamma)) / x : 0;
    rows[i] = { x, tx, T, monetary };
  }
  return rows;
}

const error = (got: Record<string, number>, want: Record<string, number>) => Object.fromEntries(Object.keys(want).map((k) => [k, Math.abs(got[k]! - want[k]!) / want[k]!]));
const fmt = (e: Record<string, number>) => Object.entries(e).map(([k, v]) => `${k} ${(v * 100).toFixed(2)}%`).join(', ');
const worst = (e: Record<string, number>) => Math.max(...Object.values(e));
const time = <T>(f: () => T): [T, number] => {
  const t = performance.now();
  const v = f();
  return [v, (performance.now() - t) / 1000];
};

console.log(`bench:clv  ${CUSTOMERS.toLocaleString('en-US')} synthetic customers per model, times on a ${168 / GRID}-hour grid, Node ${process.version}`);
const results: string[] = [];
if (MODELS.includes('bgnbd') || MODELS.includes('gamma_gamma')) {
const bgRows = draw('bgnbd', 1);
const bgData = toRfm(bgRows);
const [, bgOnce] = time(() => bgnbdLogLikelihood(BG, bgData));
const bg = fitBgNbd(bgData);
const bgError = error(bg.params, BG);
results.push(`BG/NBD ${worst(bgError) <= 0.02 ? 'met' : 'NOT met'}`);
console.log(`  BG/NBD       fit ${bg.seconds.toFixed(2)} s (${bg.evaluations} evaluations over ${bgData.x.length.toLocaleString('en-US')} distinct rows; one evaluation ${(bgOnce * 1000).toFixed(1)} ms)  errors ${fmt(bgError)}`);
if (MODELS.includes('gamma_gamma')) {
const spend = toSpend(bgRows);
const [, ggOnce] = time(() => gammaGammaLogLikelihood(GG, spend));
const gg = fitGammaGamma(spend);
const ggError = error(gg.params, GG);
results.push(`Gamma-Gamma ${worst(ggError) <= 0.02 ? 'met' : 'NOT met'}`);
console.log(`  Gamma-Gamma  fit ${gg.seconds.toFixed(2)} s (${gg.evaluations} evaluations over ${spend.x.length.toLocaleString('en-US')} repeat buyers; one evaluation ${(ggOnce * 1000).toFixed(1)} ms)  errors ${fmt(ggError)}`);
}
console.log(`  target: BG/NBD under 10 s (${bg.seconds < 10 ? 'met' : 'NOT met'})`);
}
if (MODELS.includes('pareto_nbd')) {
const pnData = toRfm(draw('pareto_nbd', 2));
const [, pnOnce] = time(() => paretoNbdLogLikelihood(PN, pnData));
const pn = fitParetoNbd(pnData);
const pnError = error(pn.params, PN);
results.push(`Pareto/NBD ${worst(pnError) <= 0.02 ? 'met' : 'NOT met'}`);
console.log(`  Pareto/NBD   fit ${pn.seconds.toFixed(2)} s (${pn.evaluations} evaluations over ${pnData.x.length.toLocaleString('en-US')} distinct rows; one evaluation ${(pnOnce * 1000).toFixed(1)} ms)  errors ${fmt(pnError)}`);
}
console.log(`  parameters within 2%: ${results.join(', ')}`);
