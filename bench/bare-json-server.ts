/** The Profile API baseline: a bare Fastify route answering a fixed JSON body (given as argv[2]). */
import Fastify from 'fastify';

const body = JSON.parse(process.argv[2] ?? '{}') as unknown;
const app = Fastify();
app.get('/v1/spaces/:space/collections/users/profiles/:id/traits', async () => body);
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`listening on ${address}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
