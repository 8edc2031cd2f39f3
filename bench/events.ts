import { createHash, randomFillSync } from 'node:crypto';

/** Realistic analytics.js-shaped events (~370 bytes each) for benchmarks. */
const PRODUCTS = ['Espresso Machine', 'Milk Frother', 'Coffee Beans 1kg', 'Grinder', 'Descaler'];

export function realisticEvent(i: number, messageId: string): Record<string, unknown> {
  const user = i % 5000;
  const product = PRODUCTS[i % PRODUCTS.length]!;
  return {
    type: 'track',
    event: i % 3 === 0 ? 'Order Completed' : 'Product Viewed',
    userId: `user-${user}`,
    anonymousId: anonymousIdOf(user),
    messageId,
    timestamp: new Date(Date.now() - (i % 600) * 1000).toISOString(),
    properties: { product_id: `sku-${i % 97}`, name: product, price: 19.99 + (i % 50), currency: 'EUR', quantity: 1 + (i % 3) },
    context: { ip: '203.0.113.7', locale: 'de-DE', page: { path: '/shop/espresso' } },
  };
}

/** A browser's anonymousId: a UUID like analytics.js makes, the same for a user every time. */
function anonymousIdOf(user: number): string {
  const h = createHash('sha256').update(`anonymous-${user}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const MARK = '\u0000MID\u0000';

/**
 * A body template with its messageIds cut out, so each request gets fresh ids (dedupe would
 * otherwise make later requests cheaper) without rebuilding 40 KB of JSON per request.
 */
export function bodyTemplate(events: number): (requestNo: string) => string {
  const item = (i: number) => realisticEvent(i, MARK);
  const text = events === 1 ? JSON.stringify(item(0)) : JSON.stringify({ batch: Array.from({ length: events }, (_, i) => item(i)), context: { library: { name: 'bench', version: '1' } } });
  const parts = text.split(JSON.stringify(MARK).slice(1, -1));
  return (requestNo) => {
    let out = parts[0]!;
    for (let i = 1; i < parts.length; i++) out += `${requestNo}-${i}${parts[i]}`;
    return out;
  };
}

/**
 * Request bodies as bytes with fresh messageIds at little cost to the load generator (which
 * shares the machine's cores with the server under test): a ring of copies of the template,
 * each call overwriting one copy's ids in place with random UUIDs, as SDKs make them (ids
 * that were counters compressed to almost nothing, flattering what the log stores and syncs:
 * 2.0 KB of body and 0.7 KB of verdicts per batch of 100, compressed apart, against 5.9 and 4.9 KB
 * with UUIDs).
 */
export function bodyBytes(events: number): () => Buffer {
  const slot = 'x'.repeat(36);
  const template = Buffer.from(bodyTemplate(events)(slot));
  const marker = Buffer.from(`"messageId":"${slot}`);
  const offsets: number[] = [];
  for (let at = template.indexOf(marker); at >= 0; at = template.indexOf(marker, at + 1)) offsets.push(at + marker.length - slot.length);
  const ring = Array.from({ length: 256 }, () => Buffer.from(template));
  const random = Buffer.alloc(16 * offsets.length);
  let n = 0;
  return () => {
    const buf = ring[n++ % ring.length]!;
    randomFillSync(random);
    for (let e = 0; e < offsets.length; e++) writeUuid(buf, offsets[e]!, random, e * 16);
    return buf;
  };
}

const HEX = Buffer.from('0123456789abcdef');

/** A version-4 UUID's 36 characters from 16 random bytes, written as ASCII at `at`. */
function writeUuid(buf: Buffer, at: number, random: Buffer, from: number): void {
  random[from + 6] = (random[from + 6]! & 0x0f) | 0x40;
  random[from + 8] = (random[from + 8]! & 0x3f) | 0x80;
  for (let i = 0, o = at; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) buf[o++] = 45;
    const b = random[from + i]!;
    buf[o++] = HEX[b >> 4]!;
    buf[o++] = HEX[b & 15]!;
  }
}
