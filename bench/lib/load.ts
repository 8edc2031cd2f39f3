import autocannon from 'autocannon';
import { bodyBytes } from '../events.ts';
import { basic } from './server.ts';

export type LoadResult = { eventsPerSec: number; p50: number; p99: number; non2xx: number };

/**
 * Posts realistic events (fresh messageIds on every request, see bodyBytes) to `path` with
 * autocannon: 2 s of warm-up, then `seconds` measured.
 */
export async function loadIngest(url: string, path: string, eventsPerRequest: number, writeKey: string, { seconds = 10, connections = 8 } = {}): Promise<LoadResult> {
  const body = bodyBytes(eventsPerRequest);
  const run = async (duration: number) =>
    autocannon({
      url: `${url}${path}`,
      method: 'POST',
      connections,
      duration,
      headers: { 'content-type': 'application/json', authorization: basic(writeKey) },
      requests: [{ setupRequest: (req) => ({ ...req, body: body() }) }],
    });
  await run(2);
  const r = await run(seconds);
  const ok = r.requests.total - r.non2xx;
  return { eventsPerSec: (ok * eventsPerRequest) / seconds, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx };
}

export const best = (rs: LoadResult[]): LoadResult => rs.reduce((a, b) => (b.eventsPerSec > a.eventsPerSec ? b : a));
export const formatLoad = (r: LoadResult) => `${Math.round(r.eventsPerSec).toLocaleString('en-US').padStart(9)} events/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms${r.non2xx ? `  (${r.non2xx} non-2xx!)` : ''}`;
