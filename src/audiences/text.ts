import { DefinitionError, PREDICTED_CLV_TRAIT, validateDefinition, VALUE_TIER_TRAIT, type AudienceNode, type Comparison } from './definition.ts';
import type { Filter } from '../profiles/computed-traits.ts';

/**
 * The short text form of an audience that a marketer can type, e.g.
 *   traits.plan = "pro" and performed "Order Completed" at least 3 times in last 30 days
 *     where total > 50 and not in audience "churned"
 * plus `account.<trait> …` (any linked account), `consented to "<purpose>"`, and
 * `value tier …` / `predicted clv …` (the lifetime-value computed traits).
 * `parseAudience` turns it into the JSON tree; `printAudience` turns any tree back into text.
 * `and` binds tighter than `or`; a `where` clause takes filters joined by `and` for as long as
 * the next words read as a filter.
 */

type Token = { kind: 'word' | 'string' | 'number' | 'op' | 'punct'; text: string; value: unknown; at: number };

const WORD = /[A-Za-z_$][A-Za-z0-9_$-]*/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const OP = /!=|>=|<=|=|>|</y;
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'audience', 'performed', 'did', 'perform', 'at', 'least', 'most', 'exactly', 'more', 'fewer', 'than', 'times', 'last', 'days', 'where', 'exists', 'does', 'exist', 'contains', 'before', 'after', 'within', 'older', 'true', 'false', 'traits', 'account', 'consented', 'to', 'value', 'tier', 'predicted', 'clv']);
/** Words that start a condition: after `and` in a where clause they end the filters. */
const CONDITION_START = new Set(['not', 'in', 'performed', 'did', 'traits', 'account', 'consented']);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const at = (re: RegExp) => {
    re.lastIndex = i;
    return re.exec(text)?.[0];
  };
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    let m: string | undefined;
    if ((m = at(STRING))) tokens.push({ kind: 'string', text: m, value: JSON.parse(m), at: i });
    else if ((m = at(NUMBER)) && !/[A-Za-z_]/.test(text[i + m.length] ?? '')) tokens.push({ kind: 'number', text: m, value: Number(m), at: i });
    else if ((m = at(WORD))) tokens.push({ kind: 'word', text: m, value: m, at: i });
    else if ((m = at(OP))) tokens.push({ kind: 'op', text: m, value: m, at: i });
    else if ('()[],.'.includes(c)) tokens.push({ kind: 'punct', text: (m = c), value: c, at: i });
    else throw new DefinitionError(`text:${i + 1}`, `unexpected ${JSON.stringify(c)}`);
    i += m.length;
  }
  return tokens;
}

export function parseAudience(text: string): AudienceNode {
  if (text.length > 10_000) throw new DefinitionError('text', 'is longer than 10,000 characters');
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (n = 0) => tokens[pos + n];
  const where = () => `text:${(peek()?.at ?? text.length) + 1}`;
  const fail = (what: string): never => {
    throw new DefinitionError(where(), `expected ${what}${peek() ? `, found ${JSON.stringify(peek()!.text)}` : ' at the end'}`);
  };
  const isWord = (w: string, n = 0) => peek(n)?.kind === 'word' && peek(n)!.text === w;
  const word = (w: string) => (isWord(w) ? (pos++, true) : false);
  const expectWord = (w: string) => void (word(w) || fail(`"${w}"`));
  const punct = (p: string) => (peek()?.kind === 'punct' && peek()!.text === p ? (pos++, true) : false);
  const expectPunct = (p: string) => void (punct(p) || fail(`"${p}"`));
  const string = (): string => (peek()?.kind === 'string' ? (tokens[pos++]!.value as string) : fail('a quoted name'));
  const count = (): number => {
    const t = peek();
    if (t?.kind !== 'number' || !Number.isInteger(t.value) || (t.value as number) < 0) return fail('a whole number');
    pos++;
    return t.value as number;
  };
  const value = (): string | number | boolean => {
    const t = peek();
    if (t?.kind === 'string' || t?.kind === 'number') return (pos++, t.value as string | number);
    if (word('true')) return true;
    if (word('false')) return false;
    return fail('a value (a quoted string, a number, true or false)');
  };
  const list = (): Array<string | number | boolean> => {
    expectPunct('[');
    const out = [value()];
    while (punct(',')) out.push(value());
    expectPunct(']');
    return out;
  };
  const name = (): string => {
    const t = peek();
    if (t?.kind === 'string') return (pos++, t.value as string);
    if (t?.kind === 'word') return (pos++, t.text);
    return fail('a name');
  };
  const path = (): string => {
    let p = name();
    while (punct('.')) p += `.${name()}`;
    return p;
  };

  function comparison(): Comparison {
    const t = peek();
    if (t?.kind === 'op') {
      pos++;
      const v = value();
      if ((t.text === '=' || t.text === '!=')) return { op: t.text, value: v };
      if (typeof v === 'boolean') return fail('a number or a string');
      return { op: t.text as '>' | '>=' | '<' | '<=', value: v };
    }
    if (word('exists')) return { op: 'exists' };
    if (word('does')) return (expectWord('not'), expectWord('exist'), { op: 'not_exists' });
    if (word('in')) return { op: 'in', value: list() };
    if (word('contains')) return { op: 'contains', value: value() };
    if (word('before')) return { op: 'before', value: string() };
    if (word('after')) return { op: 'after', value: string() };
    if (word('within')) {
      const n = peek()?.kind === 'number' ? (tokens[pos++]!.value as number) : fail('a number of days');
      expectWord('days');
      return { op: 'within_days', value: n };
    }
    if (word('older')) {
      expectWord('than');
      const n = peek()?.kind === 'number' ? (tokens[pos++]!.value as number) : fail('a number of days');
      expectWord('days');
      return { op: 'older_than_days', value: n };
    }
    return fail('a comparison (=, !=, >, >=, <, <=, exists, does not exist, in, contains, before, after, within, older than)');
  }

  function looksLikeFilter(n: number): boolean {
    const t = peek(n);
    if (!t || (t.kind !== 'string' && t.kind !== 'word')) return false;
    if (t.kind === 'word' && (CONDITION_START.has(t.text) || (t.text === 'value' && isWord('tier', n + 1)) || (t.text === 'predicted' && isWord('clv', n + 1)))) return false;
    let k = n + 1;
    while (peek(k)?.kind === 'punct' && peek(k)!.text === '.') k += 2;
    const next = peek(k);
    return next?.kind === 'op' || (next?.kind === 'word' && ['exists', 'in', 'contains'].includes(next.text));
  }

  function filter(): Filter {
    const property = path();
    const c = comparison();
    if (!['=', '!=', '>', '>=', '<', '<=', 'exists', 'in', 'contains'].includes(c.op)) return fail('a filter comparison');
    return { property, ...(c as { op: Filter['op'] }) };
  }

  function eventCondition(): AudienceNode {
    const event = string();
    const node: { event: string; where?: Filter[]; withinDays?: number; count?: { op: '>=' | '>' | '=' | '<' | '<='; value: number } } = { event };
    const times = (op: '>=' | '>' | '=' | '<' | '<=') => {
      node.count = { op, value: count() };
      expectWord('times');
    };
    if (isWord('at') && isWord('least', 1)) (pos += 2, times('>='));
    else if (isWord('at') && isWord('most', 1)) (pos += 2, times('<='));
    else if (word('exactly')) times('=');
    else if (isWord('more') && isWord('than', 1)) (pos += 2, times('>'));
    else if (isWord('fewer') && isWord('than', 1)) (pos += 2, times('<'));
    if (isWord('in') && isWord('last', 1)) {
      pos += 2;
      node.withinDays = peek()?.kind === 'number' ? (tokens[pos++]!.value as number) : fail('a number of days');
      expectWord('days');
    }
    if (word('where')) {
      node.where = [filter()];
      while (isWord('and') && looksLikeFilter(1)) {
        pos++;
        node.where.push(filter());
      }
    }
    return node;
  }

  function factor(): AudienceNode {
    if (word('not')) return { not: factor() };
    if (punct('(')) {
      const inner = expr();
      expectPunct(')');
      return inner;
    }
    if (word('in')) return (expectWord('audience'), { audience: string() });
    if (word('performed')) return eventCondition();
    if (word('did')) return (expectWord('not'), expectWord('perform'), { not: eventCondition() });
    if (word('traits')) {
      expectPunct('.');
      const trait = name();
      return { trait, ...comparison() } as AudienceNode;
    }
    if (word('account')) {
      expectPunct('.');
      const account = name();
      return { account, ...comparison() } as AudienceNode;
    }
    if (word('consented')) return (expectWord('to'), { consent: string() });
    if (isWord('value') && isWord('tier', 1)) return (pos += 2, { trait: VALUE_TIER_TRAIT, ...comparison() } as AudienceNode);
    if (isWord('predicted') && isWord('clv', 1)) return (pos += 2, { trait: PREDICTED_CLV_TRAIT, ...comparison() } as AudienceNode);
    return fail('a condition (traits.…, account.…, performed, did not perform, in audience, consented to, value tier, predicted clv, not, or a parenthesis)');
  }

  function term(): AudienceNode {
    const parts = [factor()];
    while (word('and')) parts.push(factor());
    return parts.length === 1 ? parts[0]! : { and: parts };
  }

  function expr(): AudienceNode {
    const parts = [term()];
    while (word('or')) parts.push(term());
    return parts.length === 1 ? parts[0]! : { or: parts };
  }

  const tree = expr();
  if (pos < tokens.length) fail('the end, "and" or "or"');
  return validateDefinition(tree);
}

const quote = (s: string) => JSON.stringify(s);
const nameOf = (s: string) => (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s) && !KEYWORDS.has(s) ? s : quote(s));
const valueOf = (v: unknown) => (typeof v === 'string' ? quote(v) : String(v));

function comparisonText(c: Comparison): string {
  switch (c.op) {
    case 'exists':
      return 'exists';
    case 'not_exists':
      return 'does not exist';
    case 'in':
      return `in [${c.value.map(valueOf).join(', ')}]`;
    case 'contains':
      return `contains ${valueOf(c.value)}`;
    case 'before':
    case 'after':
      return `${c.op} ${quote(c.value)}`;
    case 'within_days':
      return `within ${c.value} days`;
    case 'older_than_days':
      return `older than ${c.value} days`;
    default:
      return `${c.op} ${valueOf(c.value)}`;
  }
}

const COUNT_TEXT = { '>=': 'at least', '<=': 'at most', '=': 'exactly', '>': 'more than', '<': 'fewer than' } as const;

/** The text form of a tree; parsing it gives the same tree back. */
export function printAudience(node: AudienceNode): string {
  const wrap = (child: AudienceNode, parentIs: 'and' | 'or' | 'not') => {
    const text = printAudience(child);
    const compound = 'and' in child || 'or' in child;
    const needs = parentIs === 'not' ? compound : ('and' in child && parentIs === 'and') || 'or' in child;
    return needs ? `(${text})` : text;
  };
  if ('and' in node) return node.and.map((c) => wrap(c, 'and')).join(' and ');
  if ('or' in node) return node.or.map((c) => wrap(c, 'or')).join(' or ');
  if ('not' in node) return `not ${wrap(node.not, 'not')}`;
  if ('audience' in node) return `in audience ${quote(node.audience)}`;
  if ('event' in node) {
    let text = `performed ${quote(node.event)}`;
    if (node.count) text += ` ${COUNT_TEXT[node.count.op]} ${node.count.value} times`;
    if (node.withinDays !== undefined) text += ` in last ${node.withinDays} days`;
    if (node.where?.length) text += ` where ${node.where.map((f) => `${f.property.split('.').map(nameOf).join('.')} ${comparisonText(f as Comparison)}`).join(' and ')}`;
    return text;
  }
  if ('consent' in node) return `consented to ${quote(node.consent)}`;
  if ('account' in node) {
    const { account, ...comparison } = node;
    return `account.${nameOf(account)} ${comparisonText(comparison as Comparison)}`;
  }
  const { trait, ...comparison } = node;
  const subject = trait === VALUE_TIER_TRAIT ? 'value tier' : trait === PREDICTED_CLV_TRAIT ? 'predicted clv' : `traits.${nameOf(trait)}`;
  return `${subject} ${comparisonText(comparison as Comparison)}`;
}
