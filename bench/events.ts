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
