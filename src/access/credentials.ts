import { createHash, randomBytes } from 'node:crypto';
import { TandemError } from '../errors.ts';
import { oncePerTurn } from '../ops/once-per-turn.ts';
import { compilePlan, type Enforcement, type PlanCheck, type PlanDefinition } from '../governance/tracking-plan.ts';
import type { AccessStore, Role, Token, WriteKey } from '../store/ports.ts';

export const ROLES = ['owner', 'engineer', 'marketer', 'analyst', 'access'] as const satisfies readonly Role[];

/** What each role may do, checked at the edge of every admin route. */
export const PERMISSIONS = {
  'events:read': ['owner', 'engineer', 'analyst'],
  'keys:manage': ['owner', 'engineer'],
  'tokens:manage': ['owner'],
  'profiles:read': ['owner', 'marketer', 'access'],
  'identity:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'identity:manage': ['owner', 'engineer'],
  'traits:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'traits:manage': ['owner', 'engineer', 'marketer'],
  'audiences:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'audiences:manage': ['owner', 'engineer', 'marketer'],
  'value:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'value:manage': ['owner', 'engineer', 'marketer'],
  'plans:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'plans:manage': ['owner', 'engineer'],
  'quarantine:replay': ['owner', 'engineer'],
  'audit:read': ['owner'],
  'changes:propose': ['owner', 'engineer', 'marketer'],
  'changes:approve': ['owner', 'engineer'],
  'users:manage': ['owner'],
  'destinations:read': ['owner', 'engineer', 'marketer', 'analyst'],
  'destinations:manage': ['owner', 'engineer'],
  'activations:manage': ['owner', 'engineer', 'marketer'],
} as const satisfies Record<string, readonly Role[]>;
export type Permission = keyof typeof PERMISSIONS;

export const newWriteKey = (): string => `wk_${randomBytes(18).toString('base64url')}`;
export const newAdminToken = (): string => `tdm_${randomBytes(24).toString('base64url')}`;
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * Resolves write keys and bearer tokens with a cache that is dropped whenever the store says
 * another process wrote to it, so a revocation made with the CLI takes effect at once.
 */
export function createCredentials(store: AccessStore) {
  let version = store.version();
  const keys = new Map<string, WriteKey | null>();
  const tokens = new Map<string, Token | null>();
  const fresh = oncePerTurn(() => {
    const v = store.version();
    if (v !== version) {
      version = v;
      keys.clear();
      tokens.clear();
      plans.clear();
    }
  });
  const plans = new Map<string, SourcePlan | null>();
  const compiled = new Map<string, PlanCheck>();
  const cached = <T>(cache: Map<string, T | null>, key: string, load: () => T | undefined): T | undefined => {
    fresh();
    let hit = cache.get(key);
    if (hit === undefined) {
      if (cache.size > 10_000) cache.clear();
      hit = load() ?? null;
      cache.set(key, hit);
    }
    return hit ?? undefined;
  };
  return {
    /** The compiled plan a source enforces, or undefined; compiled once per plan version. */
    sourcePlan(sourceId: string): SourcePlan | undefined {
      return cached(plans, sourceId, () => {
        const attached = store.sourcePlan(sourceId);
        if (!attached) return undefined;
        const id = `${sourceId}|${attached.plan.key}@${attached.plan.version}`;
        let check = compiled.get(id);
        if (!check) compiled.set(id, (check = compilePlan(JSON.parse(attached.plan.definition) as PlanDefinition)));
        return { key: attached.plan.key, version: attached.plan.version, enforcement: attached.enforcement as Enforcement, check };
      });
    },
    writeKey(key: string): WriteKey | undefined {
      const found = cached(keys, key, () => store.findWriteKey(key));
      return found && found.revokedAt === null ? found : undefined;
    },
    token(bearer: string): Token | undefined {
      // Keyed by the token itself: the cache lives only in this process's memory, and the hash is
      // computed once per token instead of once per request.
      const found = cached(tokens, bearer, () => store.findTokenByHash(hashToken(bearer)));
      return found && found.revokedAt === null && (found.expiresAt == null || found.expiresAt > Date.now()) ? found : undefined;
    },
    /** Call after this process changed keys or tokens. */
    invalidate(): void {
      keys.clear();
      tokens.clear();
      plans.clear();
    },
  };
}
export type Credentials = ReturnType<typeof createCredentials>;
export type SourcePlan = { key: string; version: number; enforcement: Enforcement; check: PlanCheck };

/** Whether a token's role has a permission. */
export const allows = (token: Pick<Token, 'role'>, permission: Permission): boolean => (PERMISSIONS[permission] as readonly Role[]).includes(token.role);

/** Parses `Authorization: Bearer <token>` and checks the permission; throws 401/403 codes. */
export function authorize(credentials: Credentials, header: string | undefined, permission: Permission): Token {
  const match = header ? /^Bearer ([\x21-\x7e]{1,512})$/.exec(header) : null;
  if (!match) throw new TandemError('unauthorized');
  const token = credentials.token(match[1]!);
  if (!token) throw new TandemError('unauthorized');
  if (!allows(token, permission)) throw new TandemError('forbidden');
  return token;
}

/** Profile API: the access token is the HTTP Basic username (Segment's convention). */
export function authorizeBasic(credentials: Credentials, header: string | undefined, permission: Permission): Token {
  const username = basicUsername(header);
  const token = username ? credentials.token(username) : undefined;
  if (!token) throw new TandemError('unauthorized');
  if (!allows(token, permission)) throw new TandemError('forbidden');
  return token;
}

/** The username of HTTP Basic auth, which is how Segment clients send the write key. */
export function basicUsername(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Basic ([A-Za-z0-9+/=_-]{1,1024})$/.exec(header.trim());
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const user = decoded.split(':', 1)[0];
  return user ? user : undefined;
}
