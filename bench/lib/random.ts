/** Seeded random variates for synthetic benchmark data (mulberry32; Marsaglia & Tsang 2000 for gamma). */
export function rng(seed: number) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  /** Gamma with shape k and rate θ (mean k/θ). */
  const gamma = (k: number, rate: number): number => {
    if (k < 1) return gamma(k + 1, rate) * uniform() ** (1 / k);
    const d = k - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = uniform();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return (d * v) / rate;
    }
  };
  const beta = (a: number, b: number) => {
    const x = gamma(a, 1);
    return x / (x + gamma(b, 1));
  };
  const exponential = (rate: number) => -Math.log(uniform()) / rate;
  return { uniform, gamma, beta, exponential };
}
