#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createAccessAdmin, DEFAULT_WORKSPACE } from './access/admin.ts';
import { loadConfig, type Config } from './config.ts';
import { TandemError } from './errors.ts';
import { openTandem } from './runtime.ts';
import { openSqliteStores } from './store/sqlite/index.ts';
import { clvFit } from './value/cli.ts';

const defined = <T extends Record<string, string | undefined>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: string };

const USAGE = `Usage: tandem <command>

  start [--port N] [--host H] [--data-dir DIR]   run Tandem (embedded SQLite under the data folder)
  keys create [--source NAME]                    create a write key for a source (default: "default")
  keys list                                      list write keys
  keys revoke KEY                                revoke a write key at once
  tokens create --name NAME --role ROLE [--pii]  create a token (owner|engineer|marketer|analyst for the admin API,
                                                 access for the Profile API); --pii: reads show personal
                                                 data unmasked (owners always)
  tokens list                                    list tokens (secrets are never shown again)
  tokens revoke ID                               revoke a token at once
  clv fit --csv FILE [--model bgnbd|pareto_nbd] [--unit weeks|days] [--calibration-end DATE]
          [--customer COL --date COL --amount COL]
                                                 fit lifetime-value models on a transaction file from another
                                                 system (CSV with a header, or CDNOW's layout); prints JSON

Options for every command: --data-dir DIR, --workspace ID (default "${DEFAULT_WORKSPACE}").
Configuration comes from TANDEM_* environment variables; see README.md.`;

async function start(config: Config): Promise<void> {
  const tandem = await openTandem(config);
  await tandem.start();
  const address = await tandem.app.listen({ port: config.port, host: config.host });
  const { bootstrap: boot } = tandem;
  const lines = [`Tandem listening on ${address}`];
  if (boot.writeKey) lines.push(`Write key (source "default"): ${boot.writeKey}`);
  if (boot.adminToken) lines.push(`Admin token (owner, shown only now): ${boot.adminToken}`);
  else lines.push('Admin token: created on first start; make another with `npm run tandem -- tokens create --name me --role owner`.');
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    tandem.app.log.info({ signal }, 'shutting down');
    tandem.close().then(
      () => process.exit(0),
      (err: unknown) => {
        tandem.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function admin(config: Config, command: string, action: string | undefined, args: { positionals: string[]; values: Record<string, string | undefined> }, pii = false): void {
  const stores = openSqliteStores({ dataDir: config.dataDir, sync: config.sync });
  try {
    const access = createAccessAdmin(stores.access);
    const ws = args.values.workspace ?? DEFAULT_WORKSPACE;
    const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    const target = args.positionals[2];
    if (command === 'keys' && action === 'create') out(access.createWriteKey(ws, args.values.source ?? 'default'));
    else if (command === 'keys' && action === 'list') out(access.listWriteKeys(ws));
    else if (command === 'keys' && action === 'revoke' && target) out(access.revokeWriteKey(ws, target) ?? { revoked: target });
    else if (command === 'tokens' && action === 'create') out(access.createToken(ws, args.values.name ?? '', args.values.role ?? '', undefined, pii || args.values.role === 'owner'));
    else if (command === 'tokens' && action === 'list') out(access.listTokens(ws));
    else if (command === 'tokens' && action === 'revoke' && target) out(access.revokeToken(ws, target) ?? { revoked: target });
    else throw new Error(USAGE);
  } finally {
    void stores.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' }, workspace: { type: 'string' },
      source: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, help: { type: 'boolean' }, pii: { type: 'boolean' },
      csv: { type: 'string' }, model: { type: 'string' }, unit: { type: 'string' }, 'calibration-end': { type: 'string' }, customer: { type: 'string' }, date: { type: 'string' }, amount: { type: 'string' },
    },
  });
  const [command, action] = args.positionals;
  if (!command || args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === 'clv' && action === 'fit') {
    const v = args.values;
    if (!v.csv) throw new Error(USAGE);
    process.stdout.write(`${JSON.stringify(clvFit({ csv: v.csv, ...defined({ model: v.model, unit: v.unit, calibrationEnd: v['calibration-end'], customer: v.customer, date: v.date, amount: v.amount }) }), null, 2)}\n`);
    return;
  }
  const overrides: Record<string, string> = {};
  if (args.values.port) overrides.TANDEM_PORT = args.values.port;
  if (args.values.host) overrides.TANDEM_HOST = args.values.host;
  if (args.values['data-dir']) overrides.TANDEM_DATA_DIR = args.values['data-dir'];
  const config = loadConfig(process.env, overrides);
  if (command === 'start') return start(config);
  if (command === 'keys' || command === 'tokens') return admin(config, command, action, args as never, args.values.pii === true);
  throw new Error(USAGE);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof TandemError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
