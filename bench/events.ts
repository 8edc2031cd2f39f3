/** Realistic analytics.js-shaped events (~350 bytes each) for benchmarks. */
const PRODUCTS = ['Espresso Machine', 'Milk Frother', 'Coffee Beans 1kg', 'Grinder', 'Descaler'];

export function realisticEvent(i: number, messageId: string): Record<string, unknown> {
  const user = i % 5000;
  const product = PRODUCTS[i % PRODUCTS.length]!;
  return {
    type: 'track',
    event: i % 3 === 0 ? 'Order Completed' : 'Product Viewed',
    userId: `user-${user}`,
    anonymousId: `7c1b9f2e-4d4a-${String(user).padStart(12, '0')}`,
    messageId,
    timestamp: new Date(Date.now() - (i % 600) * 1000).toISOString(),
    properties: { product_id: `sku-${i % 97}`, name: product, price: 19.99 + (i % 50), currency: 'EUR', quantity: 1 + (i % 3) },
    context: { ip: '203.0.113.7', locale: 'de-DE', page: { path: '/shop/espresso' } },
  };
}

const MARK = '\u0000MID\u0000';

/**
 * A body template with its messageIds cut out, so each request gets fresh ids (dedupe would
 * otherwise make later requests cheaper) without rebuilding 35 KB of JSON per request.
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
 * shares the machine's cores with the server under test): a ring of copies of the template whose
 * ids are fixed-width, and each call overwrites one copy's counter digits in place. Ids are
 * `<run>-<counter>-<event>`; `run` tells separate loads of the same server apart.
 */
export function bodyBytes(events: number, run: string): () => Buffer {
  const WIDTH = 12;
  const template = Buffer.from(bodyTemplate(events)(`${run}-${'0'.repeat(WIDTH)}`));
  const marker = Buffer.from(`"messageId":"${run}-`);
  const offsets: number[] = [];
  for (let at = template.indexOf(marker); at >= 0; at = template.indexOf(marker, at + 1)) offsets.push(at + marker.length);
  const ring = Array.from({ length: 256 }, () => Buffer.from(template));
  let n = 0;
  return () => {
    const buf = ring[n % ring.length]!;
    const digits = String(n++).padStart(WIDTH, '0');
    for (const at of offsets) buf.write(digits, at, 'latin1');
    return buf;
  };
}
