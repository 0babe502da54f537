import { Command } from 'commander';
import { readFileLimited } from '../core/config/index.js';
import { KeyFileError, matchEncounters, parseKeyFile, rpiTable } from '../core/matching/index.js';
import { encounterSummary, openEncounterSource } from './encounter-db.js';
import { fail, UsageError } from './errors.js';

/** An EN export holds at most a few thousand 30-byte keys; a JSON list is larger but still small. */
const MAX_KEY_FILE_BYTES = 64 * 1024 * 1024;

export function matchCommand(): Command {
  return new Command('match')
    .description('list the venue encounters of confirmed cases: diagnosis keys → RPIs → encounters')
    .requiredOption('--keys <file>', 'diagnosis keys: an EN export file ("EK Export v1" + protobuf) or a JSON list of {key, rollingStartIntervalNumber, rollingPeriod}')
    .requiredOption('--db <file>', "a collector's database (SQLite file or postgres:// URL), or a gateway's own")
    .option('--json', 'print the matches as JSON')
    .addHelpText(
      'after',
      '\nRPIs are matched within ±2 h of their interval (the EN spec\'s clock-drift tolerance); the AEM is\ndecrypted to the TX power the phone reported, giving the attenuation at the strongest sighting.\nExit codes: 0 matches listed (possibly none), 2 bad arguments or files.\nExample:\n  vgw match --keys export.bin --db /var/lib/venue-gateway/collector.db --json',
    )
    .action(async (opts: { keys: string; db: string; json?: boolean }) => {
      try {
        let keyFile: Buffer;
        try {
          keyFile = readFileLimited(opts.keys, MAX_KEY_FILE_BYTES, '--keys');
        } catch (err) {
          if (err instanceof RangeError) throw new UsageError(err.message);
          throw new UsageError(`--keys: cannot read ${opts.keys} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
        const keys = parseKeyFile(keyFile);
        const table = rpiTable(keys);
        const source = await openEncounterSource(opts.db);
        // Looked up by temp ID: PostgreSQL answers from its index, without reading the fleet's rows.
        const candidates = await source.withTempIds([...table.keys()].map((hex) => Buffer.from(hex, 'hex')));
        await source.close();
        const matches = matchEncounters(keys, candidates, table);
        if (opts.json) {
          process.stdout.write(
            JSON.stringify({
              keys: keys.length,
              matches: matches.map((m) => ({
                ...encounterSummary(m, { key: m.keyIndex, intervalNumber: m.intervalNumber }),
                txPowerDbm: m.txPowerDbm,
                attenuationDb: m.attenuationDb,
              })),
            }, null, 2) + '\n',
          );
          return;
        }
        process.stdout.write(`${keys.length} diagnosis keys, ${matches.length} matching encounters\n`);
        for (const m of matches) {
          process.stdout.write(
            `${m.venue ?? '-'} ${m.gateway ?? '-'}  ${new Date(m.firstSeen).toISOString()} → ${new Date(m.lastSeen).toISOString()}` +
              `  ${Math.round((m.lastSeen - m.firstSeen) / 1000)} s  ${m.count} adverts  RSSI ${m.rssiMin}..${m.rssiMax}` +
              `${m.txPowerDbm !== null ? `  TX ${m.txPowerDbm} dBm` : ''}${m.attenuationDb !== null ? `  attenuation ${m.attenuationDb} dB` : ''}  (key #${m.keyIndex})\n`,
          );
        }
      } catch (err) {
        fail(err instanceof KeyFileError ? new UsageError(`--keys: ${err.message}`) : err);
      }
    });
}
