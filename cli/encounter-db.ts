// Reads the encounters of a venue-gateway database: a collector's (venue, gateway, settled
// encounters) or a gateway's own (milliseconds, RSSI sums). Read-only: safe beside a running
// daemon (WAL).
import Database from 'better-sqlite3';
import { toWire, type VenueEncounter } from '../core/encounters/index.js';
import { CollectedColumns, encounterFromCollected } from '../collector/index.js';
import { EncounterColumns, encounterFromColumns } from '../daemon/store/index.js';
import { UsageError } from './errors.js';

export function openEncounterDb(path: string): Database.Database {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.prepare('SELECT temp_id, metadata FROM encounters LIMIT 0').all();
    return db;
  } catch (err) {
    throw new UsageError(`--db: ${path} is not a venue-gateway database (${(err as Error).message})`);
  }
}

/**
 * Encounters of a collector's database or of a gateway's own, always settled: a gateway's
 * encounters go through `toWire`, as they would to the backend, so an encounter has one
 * duration and one mean wherever it is read.
 */
export function* encounters(
  db: Database.Database,
  from = 0,
  to = Number.MAX_SAFE_INTEGER,
  only: { protocol?: number; venue?: string | null } = {},
): Generator<VenueEncounter> {
  const collector = db.prepare("SELECT count(*) FROM pragma_table_info('encounters') WHERE name = 'rssi_mean'").pluck().get() === 1;
  const where = ['last_seen >= @from', 'first_seen < @to'];
  if (only.protocol !== undefined) where.push('protocol = @protocol');
  // a gateway's own database is one venue's and has no venue column
  if (collector && typeof only.venue === 'string') where.push('venue = @venue');
  const rows = db.prepare(`SELECT * FROM encounters WHERE ${where.join(' AND ')} ORDER BY first_seen`).iterate({ from, to, ...only });
  // the life names the encounter; a settled encounter does not carry it
  for (const r of rows) yield collector ? encounterFromCollected(r as CollectedColumns) : toWire(encounterFromColumns(r as EncounterColumns, ''));
}

/** The fields health officers read, in the order `vgw export` and `vgw match --json` print them. */
export function encounterSummary(e: VenueEncounter, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    venue: e.venue ?? null,
    gateway: e.gateway ?? null,
    encounter: e.id,
    ...extra,
    firstSeen: new Date(e.firstSeen).toISOString(),
    lastSeen: new Date(e.lastSeen).toISOString(),
    durationS: (e.lastSeen - e.firstSeen) / 1000,
    adverts: e.count,
    rssiMin: e.rssiMin,
    rssiMax: e.rssiMax,
    rssiMean: e.rssiMean,
  };
}
