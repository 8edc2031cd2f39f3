import { TandemError } from '../errors.ts';
import type { AccessStore, Role } from '../store/ports.ts';
import { hashToken, newAdminToken, newWriteKey, ROLES } from './credentials.ts';

export const DEFAULT_WORKSPACE = 'default';

/** Key and token administration, shared by the admin API and the CLI. */
export function createAccessAdmin(store: AccessStore, onChange: () => void = () => {}) {
  return {
    createWriteKey(workspaceId: string, source: string, key = newWriteKey()) {
      if (!/^[\w.-]{1,64}$/.test(source)) throw new TandemError('invalid_request', 'source must be 1–64 letters, digits, dots, dashes or underscores.');
      const created = store.createWriteKey(workspaceId, source, key);
      onChange();
      return created;
    },
    listWriteKeys: (workspaceId: string) => store.listWriteKeys(workspaceId),
    revokeWriteKey(workspaceId: string, key: string) {
      if (!store.revokeWriteKey(workspaceId, key)) throw new TandemError('not_found');
      onChange();
    },
    /** Returns the token in clear once; only its hash is stored. */
    createToken(workspaceId: string, name: string, role: string, token = newAdminToken(), pii = role === 'owner') {
      if (!(ROLES as readonly string[]).includes(role)) throw new TandemError('invalid_request', `role must be one of ${ROLES.join(', ')}.`);
      if (!/^[\w .-]{1,64}$/.test(name)) throw new TandemError('invalid_request', 'name must be 1–64 letters, digits, spaces, dots, dashes or underscores.');
      const created = store.createToken(workspaceId, name, role as Role, hashToken(token), pii);
      onChange();
      return { ...created, token };
    },
    listTokens: (workspaceId: string) => store.listTokens(workspaceId),
    revokeToken(workspaceId: string, id: string) {
      if (!store.revokeToken(workspaceId, id)) throw new TandemError('not_found');
      onChange();
    },
  };
}
export type AccessAdmin = ReturnType<typeof createAccessAdmin>;

export type Bootstrap = { created: boolean; writeKey: string | undefined; adminToken: string | undefined };

/** First start: the `default` workspace, its default source's write key and an owner token. */
export function bootstrap(store: AccessStore, given: { writeKey?: string | undefined; adminToken?: string | undefined }): Bootstrap {
  if (!store.ensureWorkspace(DEFAULT_WORKSPACE, 'Default workspace')) {
    return { created: false, writeKey: store.listWriteKeys(DEFAULT_WORKSPACE).find((k) => k.revokedAt === null)?.key, adminToken: undefined };
  }
  const admin = createAccessAdmin(store);
  const key = admin.createWriteKey(DEFAULT_WORKSPACE, 'default', given.writeKey);
  const token = admin.createToken(DEFAULT_WORKSPACE, 'bootstrap', 'owner', given.adminToken);
  return { created: true, writeKey: key.key, adminToken: token.token };
}
