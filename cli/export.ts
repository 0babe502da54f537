import { Command } from 'commander';
import { loadConfig } from '../core/config/index.js';
import { encounterSummary, openEncounterSource } from './encounter-db.js';
import { fail, parseTime, UsageError } from './errors.js';

const COLUMNS = [
  'venue', 'gateway', 'life', 'encounter', 'protocol', 'tempId', 'metadata', 'firstSeen', 'lastSeen', 'durationS', 'adverts', 'rssiMin', 'rssiMax', 'rssiMean',
  'attenuationS', 'clockSynced',
] as const;

function csvField(v: unknown): string {
  // bucket seconds in one field, separated by semicolons
  const s = v === null || v === undefined ? '' : Array.isArray(v) ? v.join(';') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** stdout in 64 KiB writes, waiting for the pipe when it is full. */
class Output {
  private chunks: string[] = [];
  private size = 0;

  async write(s: string): Promise<void> {
    this.chunks.push(s);
    this.size += s.length;
    if (this.size >= 65_536) await this.flush();
  }

  async flush(): Promise<void> {
    const text = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    if (text.length > 0 && !process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write the encounters of a time range as JSON or CSV (for health officers): venue, gateway, life and id (an encounter\'s identity), protocol, temp ID and metadata in hex, times, adverts, RSSI, seconds per attenuation bucket and the clock flag')
    .option('--db <file>', "a collector's database (SQLite file or postgres:// URL), or a gateway's own (venue and gateway are then null: give its config with -c to name them)")
    .option('-c, --config <file>', "or a config: a gateway's (its store.path) or a collector's (collector.database)")
    .requiredOption('--from <time>', 'start, ISO-8601 or unix ms (encounters overlapping the range)')
    .requiredOption('--to <time>', 'end, ISO-8601 or unix ms (exclusive)')
    .option('--format <f>', 'json or csv', 'json')
    .addHelpText('after', '\nExit codes: 0 ok, 2 bad arguments.\nExamples:\n  vgw export --db collector.db --from 2026-11-20T00:00Z --to 2026-11-21T00:00Z --format csv > day.csv\n  sudo vgw export -c /etc/venue-gateway/config.json --from 2026-11-20T00:00Z --to 2026-11-21T00:00Z')
    .action(async (opts: { db?: string; config?: string; from: string; to: string; format: string }) => {
      try {
        if ((opts.db === undefined) === (opts.config === undefined)) throw new UsageError('give either --db FILE or --config FILE');
        let path = opts.db;
        let unit = {};
        if (opts.config) {
          const config = loadConfig(opts.config);
          path = config.collector?.database ?? config.store.path;
          // a gateway's own file does not name its unit; its config does
          if (!config.collector && config.gateway) unit = { gateway: config.gateway.id, venue: config.gateway.venue };
        }
        const from = parseTime(opts.from, '--from');
        const to = parseTime(opts.to, '--to');
        if (to <= from) throw new UsageError('--to: must be after --from');
        if (opts.format !== 'json' && opts.format !== 'csv') throw new UsageError(`--format: "${opts.format}" must be json or csv`);
        const source = await openEncounterSource(path!, unit);
        // Streamed: a fleet's day is millions of rows. The JSON is what JSON.stringify(rows, null, 2) prints.
        const out = new Output();
        let n = 0;
        if (opts.format === 'csv') await out.write(COLUMNS.join(',') + '\n');
        for await (const e of source.encounters(from, to)) {
          const r = encounterSummary(e, { tempId: e.tempId.toString('hex'), metadata: e.metadata.toString('hex') });
          if (opts.format === 'csv') await out.write(COLUMNS.map((c) => csvField(r[c])).join(',') + '\n');
          else await out.write((n === 0 ? '[\n' : ',\n') + JSON.stringify(r, null, 2).replace(/^/gm, '  '));
          n++;
        }
        await source.close();
        if (opts.format === 'json') await out.write(n === 0 ? '[]\n' : '\n]\n');
        await out.flush();
      } catch (err) {
        fail(err);
      }
    });
}
