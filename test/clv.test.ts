import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { bgnbdExpected, bgnbdPAlive, fitBgNbd } from '../src/value/bgnbd.ts';
import { expectedSpend, fitGammaGamma, toSpend } from '../src/value/gamma-gamma.ts';
import { fitParetoNbd, paretoNbdExpected, paretoNbdPAlive } from '../src/value/pareto-nbd.ts';
import { toRfm } from '../src/value/rfm.ts';
import { summarize } from '../src/value/summary.ts';
import { parseTransactions } from '../src/value/transactions.ts';

/** Fader & Hardie's CDNOW 1/10th sample (test/data/clv/README.md): 2,357 customers, weeks, calibration to 1997-09-30. */
const data = (file: string) => readFileSync(new URL(`./data/clv/${file}`, import.meta.url), 'utf8');
const published = data('cdnow_customers_summary_with_transactions.csv').trim().split(/\r?\n/).slice(1).map((l) => l.split(',').map(Number)).map(([id, x, tx, T, m]) => ({ id: String(id), x: x!, tx: tx!, T: T!, monetary: m! }));
const CALIBRATION_END = Date.UTC(1997, 8, 30);
const HOLDOUT_END = Date.UTC(1998, 5, 30);
const near = (actual: number, expected: number, within: number, what: string) => assert.ok(Math.abs(actual - expected) <= within, `${what}: ${actual} is not within ${within} of ${expected}`);

describe('CLV models against the published CDNOW results', () => {
  const rfm = toRfm(published);

  test('BG/NBD: r = 0.243, α = 4.414, a = 0.793, b = 2.426, log-likelihood −9582.4; the customer with x = 2, t_x = 30.43, T = 38.86', () => {
    const fit = fitBgNbd(rfm);
    near(fit.params.r, 0.243, 0.0005, 'r');
    near(fit.params.alpha, 4.414, 0.0005, 'α');
    near(fit.params.a, 0.793, 0.0005, 'a');
    near(fit.params.b, 2.426, 0.0005, 'b');
    near(fit.logLikelihood, -9582.4, 0.05, 'log-likelihood');
    assert.equal(fit.customers, 2357);
    near(bgnbdExpected(fit.params, 39, 2, 30.43, 38.86), 1.226, 0.0005, 'expected purchases in 39 weeks');
    near(bgnbdPAlive(fit.params, 2, 30.43, 38.86), 0.7266, 0.00005, 'P(alive)');
  });

  test('Pareto/NBD: r = 0.553, α = 10.578, s = 0.606, β = 11.669 (flat in β), log-likelihood −9595.0; the same customer', () => {
    const fit = fitParetoNbd(rfm);
    near(fit.params.r, 0.553, 0.0005, 'r');
    near(fit.params.alpha, 10.578, 0.0015, 'α');
    near(fit.params.s, 0.606, 0.0005, 's');
    near(fit.params.beta, 11.669, 0.05, 'β');
    near(fit.logLikelihood, -9595.0, 0.05, 'log-likelihood');
    near(paretoNbdExpected(fit.params, 39, 2, 30.43, 38.86), 1.4551, 0.00005, 'expected purchases in 39 weeks');
    near(paretoNbdPAlive(fit.params, 2, 30.43, 38.86), 0.8691, 0.00005, 'P(alive)');
  });

  test('Gamma-Gamma on the 946 repeat buyers: p = 6.25, q = 3.74, γ = 15.44', () => {
    const spend = toSpend(published);
    assert.equal(spend.x.length, 946);
    const fit = fitGammaGamma(spend);
    near(fit.params.p, 6.25, 0.005, 'p');
    near(fit.params.q, 3.74, 0.005, 'q');
    near(fit.params.gamma, 15.44, 0.01, 'γ');
    const population = (fit.params.p * fit.params.gamma) / (fit.params.q - 1);
    const customer = expectedSpend(fit.params, 2, 22.35);
    assert.ok(customer > Math.min(22.35, population) && customer < Math.max(22.35, population), 'a customer\'s expected spend lies between their own mean and the population\'s');
  });
});

describe('the summary from the raw CDNOW transaction log', () => {
  const purchases = parseTransactions(data('CDNOW_sample.txt'));
  const summary = summarize(purchases, { unit: 'weeks', calibrationEnd: CALIBRATION_END, holdoutEnd: HOLDOUT_END });

  test('reproduces cdnow_customers_summary.csv: frequency exactly, recency and T within 0.005 weeks', () => {
    assert.equal(purchases.length, 6919);
    const expected = data('cdnow_customers_summary.csv').trim().split(/\r?\n/).slice(1).map((l) => l.split(',').map(Number));
    const byId = new Map(summary.map((s) => [s.customer, s]));
    assert.equal(byId.size, 2357);
    for (const [id, x, tx, T] of expected) {
      const s = byId.get(String(id))!;
      assert.equal(s.x, x, `customer ${id} frequency`);
      near(s.tx, tx!, 0.005, `customer ${id} recency`);
      near(s.T, T!, 0.005, `customer ${id} T`);
    }
    const zbar = new Map(published.map((p) => [p.id, p.monetary]));
    for (const s of summary) near(s.monetary, zbar.get(s.customer)!, 0.0051, `customer ${s.customer} mean repeat spend`);
  });

  test('holdout (39 weeks): 1,882 actual repeat transactions; conditional expectations sum to 1,653.4 (BG/NBD) and 1,665.6 (Pareto/NBD)', () => {
    assert.equal(summary.reduce((n, s) => n + s.holdoutX, 0), 1882);
    const rfm = toRfm(summary);
    const bg = fitBgNbd(rfm);
    const pn = fitParetoNbd(rfm);
    near(bg.logLikelihood, -9582.4, 0.05, 'BG/NBD log-likelihood from the raw log');
    near(pn.logLikelihood, -9595.0, 0.05, 'Pareto/NBD log-likelihood from the raw log');
    near(summary.reduce((n, s) => n + bgnbdExpected(bg.params, 39, s.x, s.tx, s.T), 0), 1653.4, 0.05, 'BG/NBD holdout');
    // Pareto/NBD's likelihood is flat in β; the sum moves in its first decimal along that ridge.
    near(summary.reduce((n, s) => n + paretoNbdExpected(pn.params, 39, s.x, s.tx, s.T), 0), 1665.6, 0.15, 'Pareto/NBD holdout');
  });
});

describe('tandem clv fit --csv', () => {
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../src/main.ts', import.meta.url)), 'clv', 'fit', ...args], { encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  test('fits a transaction file exported from another system (CDNOW layout, or a CSV with a header)', (t) => {
    const cdnow = run(['--csv', fileURLToPath(new URL('./data/clv/CDNOW_sample.txt', import.meta.url)), '--calibration-end', '1997-09-30', '--model', 'pareto_nbd']);
    assert.equal(cdnow.code, 0, cdnow.err);
    const fit = JSON.parse(cdnow.out);
    assert.equal(fit.customers, 2357);
    assert.equal(fit.model, 'pareto_nbd');
    near(fit.logLikelihood, -9595.0, 0.05, 'log-likelihood');
    near(fit.spend.params.q, 3.74, 0.01, 'q');

    const dir = mkdtempSync(join(tmpdir(), 'tandem-clv-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const csv = join(dir, 'orders.csv');
    writeFileSync(csv, ['customer_no,ordered_on,revenue', ...parseTransactions(data('CDNOW_sample.txt')).map((p) => `c${p.customer},${new Date(p.at).toISOString().slice(0, 10)},${p.amount}`)].join('\n'));
    const exported = run(['--csv', csv, '--customer', 'customer_no', '--date', 'ordered_on', '--calibration-end', '1997-09-30']);
    assert.equal(exported.code, 0, exported.err);
    near(JSON.parse(exported.out).logLikelihood, -9582.4, 0.05, 'same data, same BG/NBD fit');
    const bad = run(['--csv', csv, '--customer', 'nobody']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /no column "nobody"/);
  });
});
