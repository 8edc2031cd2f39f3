import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WRITE_KEY = 'wk_bench_write_key_0001';
export const ADMIN_TOKEN = 'tdm_bench_admin_token_0000001';
export const basic = (user: string): string => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;

export type Server = { url: string; dataDir: string; stop: () => Promise<void> };

/** Runs a script (Tandem by default) in its own process; resolves once it prints where it listens. */
export function spawnServer(script = fileURLToPath(new URL('../../src/main.ts', import.meta.url)), args?: string[], env: Record<string, string> = {}, dataDir?: string): Promise<Server> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  const argv = args ?? ['start', '--port', '0', '--data-dir', dir];
  const child = spawn(process.execPath, [script, ...argv], {
    env: { ...process.env, TANDEM_WRITE_KEY: WRITE_KEY, TANDEM_ADMIN_TOKEN: ADMIN_TOKEN, TANDEM_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        resolve({
          url: m[1]!,
          dataDir: dir,
          stop: () =>
            new Promise((done) => {
              child.once('exit', () => {
                if (!dataDir) rmSync(dir, { recursive: true, force: true });
                done();
              });
              child.kill('SIGTERM');
            }),
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

/** Tandem on an existing data folder, which it keeps when it stops. */
export const spawnTandemOn = (dataDir: string) => spawnServer(undefined, ['start', '--port', '0', '--data-dir', dataDir], {}, dataDir);

/**
 * A data folder that a first start has set up (workspace, default source, owner token), ready
 * to be seeded straight into; removed when the benchmark exits.
 */
export async function bootstrappedDataDir(prefix: string): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  await (await spawnTandemOn(dataDir)).stop();
  return dataDir;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
