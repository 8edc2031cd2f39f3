import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WRITE_KEY = 'wk_bench_write_key_0001';
export const ADMIN_TOKEN = 'tdm_bench_admin_token_0000001';
export const basic = (user: string): string => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;

export type Server = { url: string; dataDir: string; stop: () => Promise<void> };

/**
 * Runs a script (Tandem by default) in its own process; resolves once it prints where it listens.
 * BENCH_SERVER_NODE_ARGS adds Node flags to that process (e.g. `--cpu-prof --cpu-prof-dir=…`).
 */
export function spawnServer(script = fileURLToPath(new URL('../../src/main.ts', import.meta.url)), args?: string[], env: Record<string, string> = {}, dataDir?: string): Promise<Server> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  const argv = args ?? ['start', '--port', '0', '--data-dir', dir];
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, script, ...argv], {
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

/** Polls /readyz until it answers 200 (the log writer has loaded its dedupe window); the time it took, in ms. */
export async function waitReady(url: string): Promise<number> {
  const started = performance.now();
  while ((await fetch(`${url}/readyz`)).status !== 200) await new Promise((r) => setTimeout(r, 20));
  return performance.now() - started;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
