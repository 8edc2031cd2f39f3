/**
 * The baseline: a bare Fastify route with Fastify's stock JSON body parsing (the bench sends
 * `application/json`), answering 200 and doing nothing else.
 */
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 1024 * 1024 });
for (const path of ['/v1/batch', '/v1/track']) app.post(path, async () => ({ success: true }));
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`listening on ${address}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
