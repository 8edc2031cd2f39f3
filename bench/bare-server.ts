/** The baseline: a bare Fastify route that only parses the same JSON body and answers 200. */
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 1024 * 1024 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
  try {
    done(null, JSON.parse(body as string));
  } catch (err) {
    done(err as Error);
  }
});
for (const path of ['/v1/batch', '/v1/track']) app.post(path, async () => ({ success: true }));
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`Tandem listening on ${address}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
