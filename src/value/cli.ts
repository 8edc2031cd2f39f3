import { readFileSync } from 'node:fs';
import { DEFAULT_SETTINGS, fitValue, MODELS, type Model } from './clv.ts';
import { summarize, type Unit } from './summary.ts';
import { parseDate, parseTransactions } from './transactions.ts';

export type ClvFitOptions = { csv: string; model?: string; unit?: string; calibrationEnd?: string; customer?: string; date?: string; amount?: string };

/**
 * `tandem clv fit --csv FILE`: a transaction file exported from another system → the purchase
 * model and Gamma-Gamma fitted, as JSON (parameters, log-likelihood, customers, duration).
 */
export function clvFit(options: ClvFitOptions): Record<string, unknown> {
  const model = (options.model ?? DEFAULT_SETTINGS.model) as Model;
  if (!MODELS.includes(model)) throw new Error(`--model must be one of ${MODELS.join(', ')}`);
  const unit = (options.unit ?? DEFAULT_SETTINGS.unit) as Unit;
  if (unit !== 'days' && unit !== 'weeks') throw new Error('--unit must be days or weeks');
  const purchases = parseTransactions(readFileSync(options.csv, 'utf8'), { customer: options.customer ?? 'id', date: options.date ?? 'date', ...(options.amount === undefined ? {} : { amount: options.amount }) });
  if (purchases.length === 0) throw new Error(`${options.csv} holds no transactions`);
  const calibrationEnd = options.calibrationEnd === undefined ? Math.max(...purchases.map((p) => p.at)) : parseDate(options.calibrationEnd);
  const summaries = summarize(purchases, { unit, calibrationEnd });
  const fit = fitValue(summaries, { ...DEFAULT_SETTINGS, model, unit });
  return {
    model: fit.model,
    unit,
    calibrationEnd: new Date(calibrationEnd).toISOString().slice(0, 10),
    transactions: purchases.length,
    customers: fit.customers,
    params: fit.params,
    logLikelihood: fit.logLikelihood,
    seconds: fit.seconds,
    spend: { model: 'gamma_gamma', ...fit.spend },
  };
}
