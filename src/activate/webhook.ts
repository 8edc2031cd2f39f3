import { createHmac, randomBytes } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Webhooks out: where they may go (the SSRF guard), how they are signed, and one POST.
 *
 * A destination's URL is checked when it is saved and again at every delivery, on the addresses
 * its host resolves to at that moment (DNS may change): loopback, private, link-local, shared,
 * multicast and reserved ranges, IPv4 and IPv6, IPv4 inside IPv6 included, are refused unless an
 * operator allows the host (`TANDEM_DESTINATION_ALLOW_HOSTS`). The connection goes to the address
 * that was checked, redirects are not followed, and plain `http` is for allowed hosts only.
 */

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24],
  ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  // (IPv4-mapped, -compatible and NAT64 addresses are judged by their IPv4 part: embeddedIpv4.)
  ['::', 128], ['::1', 128], ['::ffff:0:0:0', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) BLOCKED.addSubnet(net, prefix, 'ipv6');

/** The IPv4 address inside an IPv4-mapped, -compatible or NAT64 IPv6 address, if it is one (any spelling). */
function embeddedIpv4(address: string): string | undefined {
  // The URL parser writes IPv6 one way: lower case, zeros compressed, dotted tails in hex.
  const canonical = new URL(`http://[${address}]`).hostname.slice(1, -1);
  const hex = /^(?:::ffff:|::|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!hex) return undefined;
  const [hi, lo] = [parseInt(hex[1]!, 16), parseInt(hex[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** Whether an IP address is one a webhook must not reach (not on the public internet). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  const v4 = embeddedIpv4(address);
  return v4 !== undefined ? BLOCKED.check(v4, 'ipv4') : BLOCKED.check(address, 'ipv6');
}

/** Hosts (names or IP addresses, `*.` for subdomains) and networks (CIDR) exempt from the guard. */
export type AllowList = { names: Set<string>; suffixes: string[]; nets: BlockList };

export function parseAllowList(spec: string): AllowList {
  const out: AllowList = { names: new Set(), suffixes: [], nets: new BlockList() };
  for (const raw of spec.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const cidr = /^([^/]+)\/(\d{1,3})$/.exec(raw);
    const ip = cidr ? cidr[1]! : raw.replace(/^\[|\]$/g, '');
    const family = isIP(ip);
    if (family !== 0) out.nets.addSubnet(ip, cidr ? Number(cidr[2]) : family === 4 ? 32 : 128, family === 4 ? 'ipv4' : 'ipv6');
    else if (raw.startsWith('*.')) out.suffixes.push(raw.slice(1));
    else out.names.add(raw);
  }
  return out;
}

const allowedName = (allow: AllowList, host: string) => allow.names.has(host) || allow.suffixes.some((s) => host.endsWith(s));
const allowedAddress = (allow: AllowList, address: string) => {
  const family = isIP(address);
  return family !== 0 && allow.nets.check(address, family === 4 ? 'ipv4' : 'ipv6');
};

export class BlockedDestination extends Error {}

/** A URL's host without IPv6 brackets, lower-case. */
const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '').toLowerCase();

/** Checks a destination URL as written (scheme, credentials, literal addresses); throws BlockedDestination. */
export function checkUrl(raw: string, allow: AllowList): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BlockedDestination('The URL is not valid.');
  }
  const host = hostOf(url);
  const allowed = allowedName(allow, host) || allowedAddress(allow, host);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowed)) throw new BlockedDestination('Webhooks go over https (plain http only to hosts the operator allows).');
  if (url.username || url.password) throw new BlockedDestination('Credentials do not belong in the URL; the payload is signed instead.');
  if (!allowed && isIP(host) !== 0 && isPrivateAddress(host)) throw new BlockedDestination(`${host} is not a public address.`);
  if (!allowed && (host === 'localhost' || host.endsWith('.localhost') || !host.includes('.'))) throw new BlockedDestination(`${host} is not a public host name.`);
  return url;
}

/** A DNS lookup that refuses hosts resolving to any address the guard blocks. */
export function guardedLookup(allow: AllowList): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 4);
      const list = addresses as unknown as LookupAddress[];
      const bad = list.find((a) => isPrivateAddress(a.address) && !allowedAddress(allow, a.address));
      if (bad || list.length === 0) return callback(Object.assign(new BlockedDestination(`${hostname} resolves to ${bad?.address ?? 'nothing'}, not a public address.`), { code: 'EBLOCKED' }), '', 4);
      if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/** Bytes of a receiver's answer read before the connection is cut (the answer's body is never used). */
const MAX_RESPONSE_BYTES = 64 * 1024;

export const newSecret = (): string => `whsec_${randomBytes(24).toString('base64url')}`;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the destination's secret>`. */
export function signature(secret: string, body: string, at: number): string {
  const t = Math.floor(at / 1000);
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

export type PostResult = { status: number; retryAfterMs?: number } | { error: string; blocked: boolean };

/** POSTs JSON through the guard; answers the status, or the error that kept it from getting one. */
export function createPoster(options: { allow: AllowList; timeoutMs: number; userAgent: string }) {
  const lookup = guardedLookup(options.allow);
  const agents = { 'http:': new HttpAgent({ keepAlive: true, maxSockets: 32 }), 'https:': new HttpsAgent({ keepAlive: true, maxSockets: 32 }) };
  function post(rawUrl: string, body: string, headers: Record<string, string>): Promise<PostResult> {
    let url: URL;
    try {
      url = checkUrl(rawUrl, options.allow);
    } catch (err) {
      return Promise.resolve({ error: (err as Error).message, blocked: true });
    }
    return new Promise((resolve) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, {
        method: 'POST',
        agent: agents[url.protocol as 'http:' | 'https:'],
        lookup,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': options.userAgent, ...headers },
      });
      // The whole exchange, connecting included, within the timeout.
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
      req.on('response', (res: IncomingMessage) => {
        // Only the status matters: the body is read and dropped, and a long one cuts the connection.
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) res.destroy();
        });
        res.on('close', () => clearTimeout(timer));
        const retryAfter = Number(res.headers['retry-after']);
        resolve({ status: res.statusCode ?? 0, ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {}) });
      });
      req.on('error', (err: Error & { code?: string }) => {
        clearTimeout(timer);
        resolve({ error: err.message, blocked: err instanceof BlockedDestination || err.code === 'EBLOCKED' });
      });
      req.end(body);
    });
  }
  return { post, close: () => Object.values(agents).forEach((a) => a.destroy()) };
}
export type Poster = ReturnType<typeof createPoster>;
