// Reads the encounters of a venue-gateway database for export, match and trace: a collector's
// (SQLite file or PostgreSQL URL: venue, gateway, settled encounters) or a gateway's own SQLite
// file (milliseconds, RSSI sums). Read-only: safe beside a running daemon or collector.
import Database from 'better-sqlite3';
import { toWire, type VenueEncounter } from '../core/encounters/index.js';
import {
  CollectedColumns, describeDatabase, encounterFromCollected, isPostgresUrl, PostgresCollectorStore,
  type EncounterFilter, type EncounterSource,
} from '../collector/index.js';
import { LEGACY_LIFE } from '../core/wire/index.js';
import { EncounterColumns, encounterFromColumns } from '../daemon/store/index.js';
import { UsageError } from './errors.js';

/** A collector's or a gateway's SQLite file. */
class SqliteEncounterSource implements EncounterSource {
  private readonly collector: boolean;

  /** `unit`: the gateway and venue a gateway's own file belongs to (its config knows; the file does not). */
  constructor(private readonly db: Database.Database, private readonly unit: { gateway?: string; venue?: string } = {}) {
    this.collector = db.prepare("SELECT count(*) FROM pragma_table_info('encounters') WHERE name = 'rssi_mean'").pluck().get() === 1;
  }

  /**
   * Always settled: a gateway's encounters go through `toWire`, as they would to the backend, so
   * an encounter has one duration and one mean wherever it is read.
   */
  async *encounters(from = 0, to = Number.MAX_SAFE_INTEGER, only: EncounterFilter = {}): AsyncGenerator<VenueEncounter> {
    const where = ['last_seen >= @from', 'first_seen < @to'];
    if (only.protocol !== undefined) where.push('protocol = @protocol');
    // a gateway's own database is one venue's and has no venue column
    if (this.collector && typeof only.venue === 'string') where.push('venue = @venue');
    yield* this.rows(this.db.prepare(`SELECT ${this.columns} FROM encounters WHERE ${where.join(' AND ')} ORDER BY first_seen`).iterate({ from, to, ...only }));
  }

  async withTempIds(tempIds: readonly Buffer[]): Promise<VenueEncounter[]> {
    const wanted = new Set(tempIds.map((t) => t.toString('hex')));
    const out: VenueEncounter[] = [];
    for (const e of this.rows(this.db.prepare(`SELECT ${this.columns} FROM encounters ORDER BY first_seen`).iterate())) if (wanted.has(e.tempId.toString('hex'))) out.push(e);
    return out;
  }

  /** A gateway's own rows carry their life through the lives table (a life owns ids from its first_id on). */
  private get columns(): string {
    return this.collector ? '*' : '*, (SELECT life FROM lives WHERE lives.first_id <= encounters.id ORDER BY lives.first_id DESC LIMIT 1) AS life_of';
  }

  private *rows(rows: Iterable<unknown>): Generator<VenueEncounter> {
    for (const r of rows) {
      if (this.collector) yield encounterFromCollected(r as CollectedColumns);
      else yield { ...this.unit, life: (r as { life_of: string | null }).life_of ?? LEGACY_LIFE, ...toWire(encounterFromColumns(r as EncounterColumns, '')) };
    }
  }

  close(): void {
    this.db.close();
  }
}

/** `--db`: an SQLite file (a gateway's or a collector's) or a collector's postgres:// URL. */
export async function openEncounterSource(database: string, unit: { gateway?: string; venue?: string } = {}): Promise<EncounterSource> {
  if (isPostgresUrl(database)) {
    try {
      return await PostgresCollectorStore.open(database);
    } catch (err) {
      throw new UsageError(`--db: cannot read ${describeDatabase(database)} (${(err as Error).message})`);
    }
  }
  try {
    const db = new Database(database, { readonly: true, fileMustExist: true });
    db.prepare('SELECT temp_id, metadata FROM encounters LIMIT 0').all();
    return new SqliteEncounterSource(db, unit);
  } catch (err) {
    throw new UsageError(`--db: ${database} is not a venue-gateway database (${(err as Error).message})`);
  }
}

/** Every encounter the iterable yields, in a list (the pure matching functions take lists). */
export async function collect(source: AsyncIterable<VenueEncounter>): Promise<VenueEncounter[]> {
  const out: VenueEncounter[] = [];
  for await (const e of source) out.push(e);
  return out;
}

const PROTOCOL_NAMES: Record<number, string> = { 0: 'exposureNotification', 1: 'bluetrace' };

/**
 * The fields health officers read, in the order `vgw export` and `vgw match --json` print them: the
 * encounter's identity (gateway, life, id), its protocol, and the settled fields of the wire.
 */
export function encounterSummary(e: VenueEncounter, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    venue: e.venue ?? null,
    gateway: e.gateway ?? null,
    life: e.life ?? null,
    encounter: e.id,
    protocol: PROTOCOL_NAMES[e.protocol] ?? e.protocol,
    ...extra,
    firstSeen: new Date(e.firstSeen).toISOString(),
    lastSeen: new Date(e.lastSeen).toISOString(),
    durationS: (e.lastSeen - e.firstSeen) / 1000,
    adverts: e.count,
    rssiMin: e.rssiMin,
    rssiMax: e.rssiMax,
    rssiMean: e.rssiMean,
    attenuationS: e.attenuationS,
    clockSynced: e.clockSynced,
  };
}
