import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { describeDatabase, type FleetRow, fleetRows, fleetSummary, isPostgresUrl, openCollectorStore } from '../collector/index.js';
import { loadConfig } from '../core/config/index.js';
import { fail, UsageError } from './errors.js';
import { fleetConfigCommand } from './fleet-config.js';
import { fleetRotateCommand } from './fleet-rotate.js';
import { fleetCommandCommand } from './fleet-command.js';
import { addFleetUpdate } from './fleet-update.js';

export function fleetCommand(): Command {
  const fleet = new Command('fleet')
    .description("list the fleet from a collector's database: every gateway online or offline since when, backlog, last batch, missing batches, clock, radio, beacon, software and config versions")
    .option('--db <database>', "a collector's database: SQLite file or postgres:// URL")
    .option('-c, --config <file>', "or the collector's config (its collector.database)")
    .option('--json', 'print the summary and every gateway as JSON')
    .addHelpText(
      'after',
      '\nGateways that need a look come first: offline, then no status yet, then with missing batches.\n' +
        '"missing batches" are sequence numbers not stored: lost, or still in the gateway\'s outbox.\n' +
        'Exit codes: 0 ok, 1 the database cannot be read, 2 bad arguments.\n' +
        'Examples:\n  vgw fleet -c collector.json\n  vgw fleet --db postgres://vgw@db.internal/vgw --json',
    )
    // Its -c belongs to `vgw fleet` itself only before a subcommand: `vgw fleet config set -c …` is the subcommand's.
    .enablePositionalOptions()
    .addCommand(fleetConfigCommand())
    .addCommand(fleetRotateCommand())
    .addCommand(fleetCommandCommand())
    .action(async (opts: { db?: string; config?: string; json?: boolean }) => {
      try {
        if ((opts.db === undefined) === (opts.config === undefined)) throw new UsageError('give either --db DATABASE or --config FILE');
        let database = opts.db!;
        if (opts.config) {
          const c = loadConfig(opts.config).collector;
          if (!c) throw new UsageError(`--config: ${opts.config} has no "collector" section: give a collector's config, or --db`);
          database = c.database;
        }
        if (!isPostgresUrl(database)) assertCollectorFile(database);
        const store = await openCollectorStore(database);
        const now = Date.now();
        const rows = fleetRows(await store.lives(), await store.statuses(), now);
        await store.close();
        const summary = fleetSummary(rows);
        if (opts.json) {
          process.stdout.write(JSON.stringify({ at: new Date(now).toISOString(), database: describeDatabase(database), summary, gateways: rows }, null, 2) + '\n');
          return;
        }
        process.stdout.write(
          `${summary.gateways} gateways: ${summary.online} online, ${summary.offline} offline, ${summary.unknown} without a status; ${summary.withMissingBatches} with missing batches; ` +
            `software ${Object.entries(summary.versions).sort((a, b) => b[1] - a[1]).map(([v, n]) => `${v} ×${n}`).join(', ') || 'none'}\n`,
        );
        if (rows.length > 0) process.stdout.write(table(rows));
      } catch (err) {
        fail(err);
      }
    });
  addFleetUpdate(fleet);
  return fleet;
}

/** Not created when absent: a mistyped path must not become an empty fleet. */
function assertCollectorFile(path: string): void {
  if (!existsSync(path)) throw new UsageError(`--db: ${path} does not exist; give the collector's database (collector.database in its config)`);
  let db: Database.Database | null = null;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.prepare('SELECT gateway, last_seq FROM gateways LIMIT 0').all();
  } catch (err) {
    throw new UsageError(`--db: ${path} is not a collector's database (${(err as Error).message}); a gateway's own database has no fleet: give the collector's`);
  } finally {
    db?.close();
  }
}

const HEADERS = ['GATEWAY', 'VENUE', 'STATE', 'SINCE', 'LAST BATCH', 'MISSING', 'BACKLOG', 'CLOCK', 'RADIO', 'BEACON', 'SOFTWARE', 'CONFIG'];

function ago(s: number | null): string {
  if (s === null) return '-';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

function cells(r: FleetRow): string[] {
  return [
    r.gateway,
    r.venue,
    r.state === 'offline' && r.reason ? `offline (${r.reason})` : r.state === 'unknown' ? 'no status' : r.state,
    r.since ? r.since.slice(0, 19) + 'Z' : '-',
    ago(r.lastBatchAgoS),
    String(r.seqMissing),
    r.backlog ? `${r.backlog.pending} enc / ${r.backlog.outboxBatches} batches` : '-',
    r.clock ? `${r.clock.synchronized ? 'synced' : 'NOT synced'} (${r.clock.source})` : '-',
    r.radio ?? '-',
    r.beacon ?? '-',
    r.software ?? '-',
    (r.config ?? '-') + (r.certificateWarning ? `; ${r.certificateWarning}` : ''),
  ];
}

function table(rows: readonly FleetRow[]): string {
  const lines = [HEADERS, ...rows.map(cells)];
  const widths = HEADERS.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  return lines.map((l) => l.map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}
