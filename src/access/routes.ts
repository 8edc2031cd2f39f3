import type { FastifyInstance } from 'fastify';
import type { Token } from '../store/ports.ts';
import type { AccessAdmin } from './admin.ts';

type Deps = { admin: AccessAdmin; authorize: (header: string | undefined, permission: 'keys:manage' | 'tokens:manage') => Token };
type Body = { source?: unknown; name?: unknown; role?: unknown; pii?: boolean };

/** Write keys and tokens of the caller's workspace. */
export async function accessRoutes(app: FastifyInstance, { admin, authorize }: Deps): Promise<void> {
  const body = { type: 'object', additionalProperties: false, properties: { source: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, pii: { type: 'boolean' } } } as const;

  app.get('/api/v1/write-keys', async (req) => ({ data: admin.listWriteKeys(authorize(req.headers.authorization, 'keys:manage').workspaceId) }));
  app.post<{ Body: Body }>('/api/v1/write-keys', { schema: { body } }, async (req, reply) => {
    const { workspaceId } = authorize(req.headers.authorization, 'keys:manage');
    return reply.code(201).send(admin.createWriteKey(workspaceId, String(req.body?.source ?? 'default')));
  });
  app.delete<{ Params: { key: string } }>('/api/v1/write-keys/:key', async (req, reply) => {
    admin.revokeWriteKey(authorize(req.headers.authorization, 'keys:manage').workspaceId, req.params.key);
    return reply.code(204).send();
  });

  app.get('/api/v1/tokens', async (req) => ({ data: admin.listTokens(authorize(req.headers.authorization, 'tokens:manage').workspaceId) }));
  app.post<{ Body: Body }>('/api/v1/tokens', { schema: { body } }, async (req, reply) => {
    const { workspaceId } = authorize(req.headers.authorization, 'tokens:manage');
    const role = String(req.body?.role ?? '');
    return reply.code(201).send(admin.createToken(workspaceId, String(req.body?.name ?? ''), role, undefined, req.body?.pii ?? role === 'owner'));
  });
  app.delete<{ Params: { id: string } }>('/api/v1/tokens/:id', async (req, reply) => {
    admin.revokeToken(authorize(req.headers.authorization, 'tokens:manage').workspaceId, req.params.id);
    return reply.code(204).send();
  });
}
