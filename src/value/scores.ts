import { hiddenKey, PREDICTED_CLV_TRAIT, VALUE_TIER_TRAIT } from '../audiences/definition.ts';
import type { ComputedTrait } from '../profiles/computed-traits.ts';
import { scoreCustomer, type FitResult, type PurchaseModel, type ValueSettings } from './clv.ts';
import { summarize, type Purchase } from './summary.ts';

/** The computed traits a fit writes on each profile with purchases. */
export const VALUE_TRAITS = {
  expectedPurchases: 'expected_purchases',
  pAlive: 'p_alive',
  expectedSpend: 'expected_spend',
  clv: PREDICTED_CLV_TRAIT,
  tier: VALUE_TIER_TRAIT,
} as const;
export const VALUE_KEYS = Object.values(VALUE_TRAITS);

/**
 * Purchases are kept per profile as a hidden computed trait per purchase event: the sum of the
 * revenue property, whose contributions (one per event, with its time and amount) follow merges
 * and splits like every computed trait. Events without a numeric revenue are not purchases.
 */
export function purchaseTraits(events: string[], revenueProperty: string): ComputedTrait[] {
  return events.map((event) => ({ key: hiddenKey('__pur_', [event, revenueProperty]), kind: 'sum', event, property: revenueProperty }));
}

/** The background job that fills a workspace's purchase traits from the log (a backfill without an audience). */
export const PURCHASES_JOB = '__purchases';

/** What the stage keeps about a fit to score profiles with it. */
export type FitRecord = { settings: ValueSettings; result: FitResult; purchaseKeys: string[]; /** Profiles are scored on their purchases up to this time (the calibration end). */ asOf: number };

/** The scores of one profile from its purchases, as of `asOf`; undefined without purchases. */
export function scoreProfile(fit: FitRecord, purchases: Purchase[], asOf: number): Record<string, number | string> | undefined {
  const [summary] = summarize(purchases, { unit: fit.settings.unit, calibrationEnd: asOf });
  if (!summary) return undefined;
  const model = { model: fit.result.model, params: fit.result.params } as PurchaseModel;
  const s = scoreCustomer(model, fit.result.spend.params, fit.settings, summary, fit.result.thresholds);
  const round = (v: number) => Math.round(v * 10_000) / 10_000;
  return {
    [VALUE_TRAITS.expectedPurchases]: round(s.expectedPurchases),
    [VALUE_TRAITS.pAlive]: round(s.pAlive),
    [VALUE_TRAITS.expectedSpend]: round(s.expectedSpend),
    [VALUE_TRAITS.clv]: Math.round(s.clv * 100) / 100,
    [VALUE_TRAITS.tier]: s.tier,
  };
}
