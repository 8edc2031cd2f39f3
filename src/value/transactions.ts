import type { Purchase } from './summary.ts';

/**
 * Transactions exported from another system, for `tandem clv fit --csv`: either a CSV with a
 * header (columns named by the options; dates as YYYYMMDD or ISO 8601) or CDNOW's
 * whitespace-separated layout (customer, sample id, YYYYMMDD, quantity, amount).
 */
export type TransactionColumns = { customer: string; date: string; /** Found among amount, revenue, sales, value when absent; without one, amounts are 0. */ amount?: string };
const AMOUNT_COLUMNS = ['amount', 'revenue', 'sales', 'value'];

export function parseDate(text: string): number {
  const compact = /^(\d{4})(\d{2})(\d{2})$/.exec(text);
  const ms = compact ? Date.UTC(Number(compact[1]), Number(compact[2]) - 1, Number(compact[3])) : Date.parse(text.includes('T') || text.length <= 10 ? text : `${text.replace(' ', 'T')}Z`);
  if (Number.isNaN(ms)) throw new Error(`not a date: ${JSON.stringify(text)}`);
  return ms;
}

export function parseTransactions(text: string, columns: TransactionColumns = { customer: 'id', date: 'date' }): Purchase[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  if (lines.length === 0) return [];
  if (!lines[0]!.includes(',')) {
    // CDNOW layout: " 00004 0001 19970101  2   29.33"
    return lines.map((line, n) => {
      const f = line.trim().split(/\s+/);
      if (f.length < 5) throw new Error(`line ${n + 1}: expected 5 columns`);
      return { customer: String(Number(f[1])), at: parseDate(f[2]!), amount: Number(f[4]) };
    });
  }
  const header = lines[0]!.split(',').map((h) => h.trim());
  const col = (name: string | undefined) => {
    if (name === undefined) return -1;
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`no column ${JSON.stringify(name)} in ${header.join(',')}`);
    return i;
  };
  const [c, d, a] = [col(columns.customer), col(columns.date), col(columns.amount ?? AMOUNT_COLUMNS.find((name) => header.includes(name)))];
  return lines.slice(1).map((line, n) => {
    const f = line.split(',');
    const amount = a < 0 ? 0 : Number(f[a]);
    if (!Number.isFinite(amount)) throw new Error(`line ${n + 2}: amount is not a number`);
    return { customer: f[c]!.trim(), at: parseDate(f[d]!.trim()), amount };
  });
}
