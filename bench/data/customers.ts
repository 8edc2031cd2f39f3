/**
 * Synthetic customers with known ground truth, for identity tests and benchmarks. Each person
 * has a user id, one to three personal devices and one or two emails, and acts over web, app
 * and email channels: anonymous browsing first, then logins that tie devices and emails to the
 * user id. Some events happen on shared in-store tablets (used by many people) and some carry
 * junk identifiers ("undefined", "null", "[object Object]", "0"). Deterministic for a seed.
 */
export type Generated = {
  events: Array<Record<string, unknown>>;
  /** `type:value` of every person-specific identifier → the person it belongs to. */
  owner: Map<string, number>;
  /** Identifiers that several people use (shared tablets): they may sit on any one profile. */
  shared: Set<string>;
};

/** mulberry32: a tiny seeded generator, so the data set is the same on every machine. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const JUNK = ['undefined', 'null', '[object Object]', '0', 'anonymous'];
const PAGES = ['/', '/shop', '/shop/espresso', '/cart', '/checkout', '/account'];
const EVENTS = ['Product Viewed', 'Product Added', 'Order Completed', 'Email Opened', 'Email Clicked'];

export function generateCustomers(options: { customers: number; eventsPerCustomer?: number; seed?: number; tablets?: number }): Generated {
  const rnd = random(options.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const perCustomer = options.eventsPerCustomer ?? 10;
  const tablets = Array.from({ length: options.tablets ?? Math.max(1, Math.floor(options.customers / 50)) }, (_, i) => `tablet-${i}`);
  const events: Array<Record<string, unknown>> = [];
  const owner = new Map<string, number>();
  const shared = new Set(tablets.map((t) => `anonymous_id:${t}`));
  let seq = 0;
  let minute = 0;
  const time = () => new Date(Date.UTC(2026, 0, 1) + (minute++ % 500_000) * 60_000).toISOString();

  for (let p = 0; p < options.customers; p++) {
    const userId = `cust-${p}`;
    const devices = Array.from({ length: 1 + Math.floor(rnd() * 3) }, (_, d) => `dev-${p}-${d}`);
    const emails = Array.from({ length: 1 + Math.floor(rnd() * 2) }, (_, e) => `c${p}.${e}@example.com`);
    owner.set(`user_id:${userId}`, p);
    for (const d of devices) owner.set(`anonymous_id:${d}`, p);
    for (const e of emails) owner.set(`email:${e}`, p);
    const base = () => ({ messageId: `gen-${options.seed ?? 42}-${seq++}`, timestamp: time() });
    // Anonymous browsing on each device, then a login from each device; emails arrive with logins.
    for (const d of devices) {
      events.push({ ...base(), type: 'page', anonymousId: d, name: pick(PAGES), context: { channel: pick(['web', 'app']) } });
      events.push({ ...base(), type: 'identify', userId, anonymousId: d, traits: { email: pick(emails), plan: pick(['free', 'pro']) } });
    }
    for (const e of emails) events.push({ ...base(), type: 'identify', userId, traits: { email: e } });
    for (let i = 0; i < perCustomer - devices.length * 2 - emails.length; i++) {
      const r = rnd();
      if (r < 0.05) events.push({ ...base(), type: 'track', event: pick(EVENTS), userId, anonymousId: pick(tablets), context: { channel: 'store' } });
      else if (r < 0.08) events.push({ ...base(), type: 'track', event: pick(EVENTS), userId, anonymousId: pick(JUNK) });
      else if (r < 0.1) events.push({ ...base(), type: 'identify', userId: pick(JUNK), anonymousId: pick(devices), traits: { email: pick(JUNK) } });
      else if (r < 0.2) events.push({ ...base(), type: 'track', event: 'Email Clicked', userId, context: { channel: 'email', traits: { email: pick(emails) } } });
      else if (r < 0.6) events.push({ ...base(), type: 'track', event: pick(EVENTS), anonymousId: pick(devices), properties: { total: Math.round(rnd() * 20000) / 100 } });
      else events.push({ ...base(), type: 'page', anonymousId: pick(devices), name: pick(PAGES) });
    }
  }
  return { events, owner, shared };
}

/** Interleaves customers' events the way real traffic does, keeping each customer's own order. */
export function interleave(events: Array<Record<string, unknown>>, seed = 7): Array<Record<string, unknown>> {
  const rnd = random(seed);
  const out = [...events];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
