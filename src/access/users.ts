import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.ts';
import type { AccessStore, Role, Token } from '../store/ports.ts';
import { hashToken, newAdminToken, ROLES } from './credentials.ts';

/** scrypt (RFC 7914) with N = 2^15, r = 8, p = 1: 32 MiB (128·N·r) and ~90 ms per hash on the project VM (measured). */
const PARAMS = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SESSION_MS = 12 * 3_600_000;
/** Failed sign-ins per email before a pause, and the pause. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 15 * 60_000;

const derive = (password: string, salt: Buffer, o: ScryptOptions & { N: number; r: number; p: number }) =>
  new Promise<Buffer>((resolve, reject) => scrypt(password.normalize('NFKC'), salt, 32, o, (err, key) => (err ? reject(err) : resolve(key))));

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await derive(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p), maxmem: PARAMS.maxmem });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Compared against when the email is unknown, so that a miss takes as long as a wrong password. */
let decoy: Promise<string> | undefined;

const PASSWORD = { type: 'string', minLength: 12, maxLength: 200 } as const;

/**
 * People who sign in: owners create users with a role (and the `pii` permission or not); a user
 * signs in with email and password and gets a session, a bearer token that expires after 12
 * hours. Disabling a user revokes their sessions at once.
 */
export async function userRoutes(app: FastifyInstance, deps: { store: AccessStore; authorize: (header: string | undefined, permission: 'users:manage') => Token; invalidate: () => void }): Promise<void> {
  const { store } = deps;
  const shown = (u: { id: string; email: string; name: string; role: Role; pii: boolean; createdAt: number; disabledAt: number | null }) => ({ id: u.id, email: u.email, name: u.name, role: u.role, pii: u.pii, created_at: new Date(u.createdAt).toISOString(), disabled_at: u.disabledAt === null ? null : new Date(u.disabledAt).toISOString() });

  app.post<{ Body: { email: string; name?: string; role: Role; pii?: boolean; password: string } }>(
    '/api/v1/users',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['email', 'role', 'password'], properties: { email: { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' }, name: { type: 'string', maxLength: 200 }, role: { enum: ROLES.filter((r) => r !== 'access') }, pii: { type: 'boolean' }, password: PASSWORD } } } },
    async (req, reply) => {
      const { workspaceId } = deps.authorize(req.headers.authorization, 'users:manage');
      const email = req.body.email.trim().toLowerCase();
      const user = store.createUser({ workspaceId, email, name: req.body.name ?? email, role: req.body.role, pii: req.body.pii ?? req.body.role === 'owner' }, await hashPassword(req.body.password));
      if (!user) throw new TandemError('invalid_request', 'A user with this email exists already.');
      return reply.code(201).send(shown(user));
    },
  );

  app.get('/api/v1/users', async (req) => ({ data: store.users(deps.authorize(req.headers.authorization, 'users:manage').workspaceId).map(shown) }));

  app.delete<{ Params: { id: string } }>('/api/v1/users/:id', async (req, reply) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'users:manage');
    if (!store.disableUser(workspaceId, req.params.id)) throw new TandemError('not_found');
    deps.invalidate();
    return reply.code(204).send();
  });

  app.put<{ Params: { id: string }; Body: { password: string } }>('/api/v1/users/:id/password', { schema: { body: { type: 'object', additionalProperties: false, required: ['password'], properties: { password: PASSWORD } } } }, async (req, reply) => {
    const { workspaceId } = deps.authorize(req.headers.authorization, 'users:manage');
    if (!store.setPassword(workspaceId, req.params.id, await hashPassword(req.body.password))) throw new TandemError('not_found');
    return reply.code(204).send();
  });

  const failures = new Map<string, { count: number; since: number }>();
  app.post<{ Body: { workspace?: string; email: string; password: string } }>(
    '/api/v1/sessions',
    { schema: { body: { type: 'object', additionalProperties: false, required: ['email', 'password'], properties: { workspace: { type: 'string', maxLength: 64 }, email: { type: 'string', maxLength: 254 }, password: { type: 'string', maxLength: 200 } } } } },
    async (req, reply) => {
      const workspaceId = req.body.workspace ?? 'default';
      const email = req.body.email.trim().toLowerCase();
      const key = `${workspaceId}|${email}`;
      const now = Date.now();
      const failed = failures.get(key);
      if (failed && now - failed.since < FAILURE_WINDOW_MS && failed.count >= MAX_FAILURES) throw new TandemError('rate_limited');
      const user = store.userByEmail(workspaceId, email);
      const ok = user ? await verifyPassword(req.body.password, user.passwordHash) : (await verifyPassword(req.body.password, await (decoy ??= hashPassword(newAdminToken()))), false);
      if (!user || !ok || user.disabledAt !== null) {
        const f = failed && now - failed.since < FAILURE_WINDOW_MS ? failed : { count: 0, since: now };
        f.count++;
        failures.set(key, f);
        if (failures.size > 100_000) failures.clear();
        throw new TandemError('invalid_credentials');
      }
      failures.delete(key);
      const token = newAdminToken();
      const session = store.createSession(user, hashToken(token), now + SESSION_MS);
      return reply.code(201).send({ token, expires_at: new Date(session.expiresAt!).toISOString(), role: user.role, pii: user.pii, user_id: user.id });
    },
  );
}
