import { Command } from 'commander';
import { loadConfig } from '../core/config/index.js';
import { encounterSummary, encounters, openEncounterDb } from './encounter-db.js';
import { fail, parseTime, UsageError } from './errors.js';

const COLUMNS = ['venue', 'gateway', 'encounter', 'tempId', 'firstSeen', 'lastSeen', 'durationS', 'adverts', 'rssiMin', 'rssiMax', 'rssiMean'] as const;

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write the encounters of a time range as JSON or CSV (for health officers)')
    .option('--db <file>', "a collector's database, or a gateway's own")
    .option('-c, --config <file>', "or a config: a gateway's (its store.path) or a collector's (collector.db)")
    .requiredOption('--from <time>', 'start, ISO-8601 or unix ms (encounters overlapping the range)')
    .requiredOption('--to <time>', 'end, ISO-8601 or unix ms (exclusive)')
    .option('--format <f>', 'json or csv', 'json')
    .addHelpText('after', '\nExit codes: 0 ok, 2 bad arguments.\nExamples:\n  vgw export --db collector.db --from 2026-11-20T00:00Z --to 2026-11-21T00:00Z --format csv > day.csv\n  sudo vgw export -c /etc/venue-gateway/config.json --from 2026-11-20T00:00Z --to 2026-11-21T00:00Z')
    .action((opts: { db?: string; config?: string; from: string; to: string; format: string }) => {
      try {
        if ((opts.db === undefined) === (opts.config === undefined)) throw new UsageError('give either --db FILE or --config FILE');
        let path = opts.db;
        if (opts.config) {
          const config = loadConfig(opts.config);
          path = config.collector?.db ?? config.store.path;
        }
        const from = parseTime(opts.from, '--from');
        const to = parseTime(opts.to, '--to');
        if (to <= from) throw new UsageError('--to: must be after --from');
        if (opts.format !== 'json' && opts.format !== 'csv') throw new UsageError(`--format: "${opts.format}" must be json or csv`);
        const db = openEncounterDb(path!);
        const rows = [...encounters(db, from, to)].map((e) => encounterSummary(e, { tempId: e.tempId.toString('hex') }));
        db.close();
        if (opts.format === 'json') process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        else process.stdout.write([COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(','))].join('\n') + '\n');
      } catch (err) {
        fail(err);
      }
    });
}
