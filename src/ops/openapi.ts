/** The admin API's OpenAPI document, served at /api/v1/openapi.json. */
const error = { $ref: '#/components/schemas/Error' };
const errors = {
  '400': { description: 'Invalid request', content: { 'application/json': { schema: error } } },
  '401': { description: 'Missing or invalid bearer token', content: { 'application/json': { schema: error } } },
  '403': { description: 'The token lacks the permission', content: { 'application/json': { schema: error } } },
};
const filters = ['messageId', 'userId', 'anonymousId', 'type'].map((name) => ({ name, in: 'query', schema: { type: 'string' } }));
const status = { name: 'status', in: 'query', schema: { type: 'string', enum: ['accepted', 'flagged', 'quarantined', 'duplicate'] } };

export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'Tandem admin API', version: '1' },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } } },
      Event: {
        type: 'object',
        properties: {
          id: { type: 'string' }, messageId: { type: 'string' }, type: { type: 'string' }, event: { type: ['string', 'null'] },
          userId: { type: ['string', 'null'] }, anonymousId: { type: ['string', 'null'] },
          status: { type: 'string', enum: ['accepted', 'flagged', 'quarantined', 'duplicate'] }, reasons: { type: 'array', items: { type: 'string' } },
          sourceId: { type: 'string' }, receivedAt: { type: 'string', format: 'date-time' }, timestamp: { type: 'string', format: 'date-time' }, payload: { type: 'object' },
        },
      },
      Cursor: { type: 'object', properties: { has_more: { type: 'boolean' }, next: { type: ['string', 'null'] }, url: { type: ['string', 'null'] } } },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    '/api/v1/events': {
      get: {
        summary: 'The event log, newest first (the debugger)',
        parameters: [...filters, status, { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } }, { name: 'cursor', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'A page of events', content: { 'application/json': { schema: { type: 'object', properties: { data: { type: 'array', items: { $ref: '#/components/schemas/Event' } }, cursor: { $ref: '#/components/schemas/Cursor' } } } } } }, ...errors },
      },
    },
    '/api/v1/events/stream': {
      get: { summary: 'Server-Sent Events of newly committed events', parameters: [...filters, status], responses: { '200': { description: 'text/event-stream; each message is an Event' }, ...errors } },
    },
    '/api/v1/write-keys': {
      get: { summary: 'Write keys of the workspace', responses: { '200': { description: 'Keys' }, ...errors } },
      post: { summary: 'Create a write key for a source', requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { source: { type: 'string' } } } } } }, responses: { '201': { description: 'The key' }, ...errors } },
    },
    '/api/v1/write-keys/{key}': { delete: { summary: 'Revoke a write key', parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Revoked' }, ...errors } } },
    '/api/v1/tokens': {
      get: { summary: 'Bearer tokens of the workspace (without secrets)', responses: { '200': { description: 'Tokens' }, ...errors } },
      post: { summary: 'Create a bearer token; the secret is returned once', requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['name', 'role'], properties: { name: { type: 'string' }, role: { type: 'string', enum: ['owner', 'engineer', 'marketer', 'analyst', 'access'] } } } } } }, responses: { '201': { description: 'The token' }, ...errors } },
    },
    '/api/v1/identity/rules': {
      get: { summary: 'Identity rules of the workspace (limits, priority, blocked patterns, merge cap)', responses: { '200': { description: 'Rules' }, ...errors } },
      put: {
        summary: 'Change identity rules; unspecified fields keep their values',
        requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { limits: { type: 'object' }, defaultLimit: { type: 'integer' }, priority: { type: 'array', items: { type: 'string' } }, blocked: { type: 'array' }, mergeCap: { type: 'integer' } } } } } },
        responses: { '200': { description: 'The rules now in force' }, ...errors },
      },
    },
    '/api/v1/profiles/{ref}/identities': {
      get: { summary: "Why each identifier belongs to the profile: the event and rule of every link, merges, splits and refused links", parameters: [{ name: 'ref', in: 'path', required: true, description: 'type:value, e.g. user_id:42 or profile_id:prof_…', schema: { type: 'string' } }], responses: { '200': { description: 'Explanation' }, ...errors } },
    },
    '/api/v1/profiles/merge': {
      post: { summary: 'Merge two profiles by hand (no limit applies); recorded as an event in the log', requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['from', 'into'], properties: { from: { type: 'string' }, into: { type: 'string' } } } } } }, responses: { '200': { description: 'Merged' }, ...errors } },
    },
    '/api/v1/profiles/{ref}/split': {
      post: { summary: 'Move an identifier, and the events that came only through it, to a new profile', parameters: [{ name: 'ref', in: 'path', required: true, schema: { type: 'string' } }], requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['identifier'], properties: { identifier: { type: 'string' } } } } } }, responses: { '200': { description: 'Split' }, ...errors } },
    },
    '/api/v1/computed-traits': {
      get: { summary: 'Computed traits of the workspace', responses: { '200': { description: 'Definitions' }, ...errors } },
      post: { summary: 'Define (or redefine) a computed trait; it backfills over stored history', requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['key', 'kind', 'event'], properties: { key: { type: 'string' }, kind: { type: 'string', enum: ['count', 'sum', 'min', 'max', 'average', 'first', 'last', 'most_frequent', 'unique_list', 'unique_count'] }, event: { type: 'string' }, property: { type: 'string' }, filters: { type: 'array' }, windowDays: { type: 'number' } } } } } }, responses: { '201': { description: 'Defined' }, ...errors } },
    },
    '/api/v1/computed-traits/{key}': { delete: { summary: 'Delete a computed trait and its values', parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Deleted' }, ...errors } } },
    '/api/v1/audiences': {
      get: { summary: 'Audiences of the workspace, with their sizes', responses: { '200': { description: 'Audiences' }, ...errors } },
      post: { summary: 'Create or change an audience; it is built over every profile in the background (see backfill)', requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['key'], properties: { key: { type: 'string' }, name: { type: 'string' }, definition: { type: 'object', description: 'the JSON tree' }, text: { type: 'string', description: 'or the short text form' } } } } } }, responses: { '201': { description: 'Created' }, '200': { description: 'Changed' }, ...errors } },
    },
    '/api/v1/audiences/{key}/sizes': {
      get: { summary: 'Audience size over time', parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' } }, { name: 'bucket', in: 'query', schema: { type: 'string', enum: ['minute', 'hour', 'day'] } }], responses: { '200': { description: 'Sizes' }, ...errors } },
    },
    '/api/v1/audiences/preview': {
      post: { summary: 'Size and a sample of matching profiles for a definition, without saving it', requestBody: { content: { 'application/json': { schema: { type: 'object', required: ['key'], properties: { key: { type: 'string' }, definition: { type: 'object' }, text: { type: 'string' } } } } } }, responses: { '200': { description: 'Preview' }, ...errors } },
    },
    '/api/v1/audiences/{key}': {
      get: { summary: 'An audience: definition, size and its latest entries and exits', parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': { description: 'Audience' }, ...errors } },
      delete: { summary: 'Delete an audience (refused while another audience uses it)', parameters: [{ name: 'key', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Deleted' }, ...errors } },
    },
    '/api/v1/tokens/{id}': { delete: { summary: 'Revoke a token; takes effect at once', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }], responses: { '204': { description: 'Revoked' }, ...errors } } },
  },
} as const;

type RouteInfo = { method: string | string[]; url: string; schema?: { body?: unknown; querystring?: unknown } };

/**
 * The document, completed with every admin route registered (collected by `collectRoutes`):
 * routes without a hand-written entry get one from their method, path parameters and body and
 * query schemas, so nothing the server answers is missing from it.
 */
export function openApiDocument(routes: RouteInfo[]) {
  const paths: Record<string, Record<string, unknown>> = structuredClone(OPENAPI.paths) as Record<string, Record<string, unknown>>;
  for (const route of routes) {
    if (!route.url.startsWith('/api/v1/') || route.url === '/api/v1/openapi.json') continue;
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const params = [...route.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const query = route.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
    for (const method of [route.method].flat().map((m) => m.toLowerCase())) {
      if (method === 'head' || paths[path]?.[method]) continue;
      paths[path] ??= {};
      paths[path]![method] = {
        summary: `${method.toUpperCase()} ${route.url}`,
        parameters: [...params, ...Object.entries(query?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', schema }))],
        ...(route.schema?.body ? { requestBody: { content: { 'application/json': { schema: route.schema.body } } } } : {}),
        responses: { '200': { description: 'OK' }, ...errors },
      };
    }
  }
  return { ...OPENAPI, paths };
}
