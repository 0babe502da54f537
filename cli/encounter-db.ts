// Reads the encounters of a venue-gateway database for export, match and trace: a collector's
// (SQLite file or PostgreSQL URL: the collector's own stores read them) or a gateway's own SQLite
// file (milliseconds, RSSI sums). Read-only: safe beside a running daemon or collector.
import Database from 'better-sqlite3';
import { pullBounds, toWire, type VenueEncounter } from '../core/encounters/index.js';
import {
  CollectorDb, describeDatabase, isCollectorFile, isPostgresUrl, PostgresCollectorStore, type EncounterFilter, type EncounterSource,
} from '../collector/index.js';
import { rowsWhereIn } from '../core/sqlite/index.js';
import { LEGACY_LIFE } from '../core/wire/index.js';
import { EncounterColumns, encounterFromColumns } from '../daemon/store/index.js';
import { UsageError } from './errors.js';

/**
 * A gateway's own SQLite file (milliseconds, RSSI sums): read as the backend would receive it,
 * each encounter through `toWire`, so it has one duration and one mean wherever it is read.
 */
class GatewayFileSource implements EncounterSource {
  /** `unit`: the gateway and venue the file belongs to (its config knows; the file does not). */
  constructor(private readonly db: Database.Database, private readonly unit: { gateway?: string; venue?: string } = {}) {}

  async *encounters(from = 0, to = Number.MAX_SAFE_INTEGER, only: EncounterFilter = {}): AsyncGenerator<VenueEncounter> {
    // the range applies to the whole seconds the gateway would send (pullBounds), as a collector's would
    const { lastSeenAbove, firstSeenBelow } = pullBounds(from, to);
    const where = ['last_seen > @lastSeenAbove', 'first_seen < @firstSeenBelow'];
    if (only.protocol !== undefined) where.push('protocol = @protocol');
    // one venue's file: a venue filter has nothing to choose between
    yield* this.rows(this.db.prepare(`SELECT ${GATEWAY_COLUMNS} FROM encounters WHERE ${where.join(' AND ')} ORDER BY first_seen`).iterate({ lastSeenAbove, firstSeenBelow, protocol: only.protocol }));
  }

  withTempIds(tempIds: readonly Buffer[]): Promise<VenueEncounter[]> {
    const out = [...this.rows(rowsWhereIn(this.db, `SELECT ${GATEWAY_COLUMNS} FROM encounters`, 'temp_id', tempIds))];
    return Promise.resolve(out.sort((a, b) => a.firstSeen - b.firstSeen));
  }

  private *rows(rows: Iterable<unknown>): Generator<VenueEncounter> {
    for (const r of rows) yield { ...this.unit, life: (r as { life_of: string | null }).life_of ?? LEGACY_LIFE, ...toWire(encounterFromColumns(r as EncounterColumns, '')) };
  }

  close(): void {
    this.db.close();
  }
}

/** A gateway's rows carry their life through the lives table (a life owns ids from its first_id on). */
const GATEWAY_COLUMNS = '*, (SELECT life FROM lives WHERE lives.first_id <= encounters.id ORDER BY lives.first_id DESC LIMIT 1) AS life_of';

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
    // a collector's file has the gateways it heard from; a gateway's own has its lives
    if (isCollectorFile(db)) {
      db.close();
      return new CollectorDb(database, { readonly: true });
    }
    return new GatewayFileSource(db, unit);
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
