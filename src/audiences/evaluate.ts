import { compare } from '../profiles/compare.ts';
import { eventTraitKey, type AudienceNode } from './definition.ts';

/** What evaluation reads about one profile. */
export type ProfileView = {
  /** A trait's value: computed values first, then custom traits; undefined when absent. */
  value(key: string): unknown;
  member(audienceKey: string): boolean;
  /** The profile's latest consent for a purpose; undefined when it never said. */
  consent(purpose: string): boolean | undefined;
  /** One account trait's values, one per linked account that has it. */
  account(key: string): unknown[];
  now: number;
};

export function evaluate(node: AudienceNode, profile: ProfileView): boolean {
  if ('and' in node) return node.and.every((n) => evaluate(n, profile));
  if ('or' in node) return node.or.some((n) => evaluate(n, profile));
  if ('not' in node) return !evaluate(node.not, profile);
  if ('audience' in node) return profile.member(node.audience);
  if ('consent' in node) return profile.consent(node.consent) === true;
  if ('event' in node) {
    const count = Number(profile.value(eventTraitKey(node)) ?? 0);
    const want = node.count ?? { op: '>=', value: 1 };
    return compare(count, want, profile.now);
  }
  if ('account' in node) {
    const values = profile.account(node.account);
    // "does not exist" holds when no linked account has the trait; every other test when one matches.
    return node.op === 'not_exists' ? values.every((v) => compare(v, node, profile.now)) : values.some((v) => compare(v, node, profile.now));
  }
  return compare(profile.value(node.trait), node, profile.now);
}
