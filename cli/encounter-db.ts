// Reads the encounters of a venue-gateway database: a collector's (venue, gateway, mean RSSI)
// or a gateway's own (RSSI sum and count). Read-only: safe beside a running daemon (WAL).
import Database from 'better-sqlite3';
import type { EncounterRow } from '../core/matching/index.js';
import { RSSI_UNAVAILABLE } from '../core/protocols/index.js';
import { meanTenths, wireSpan } from '../core/wire/index.js';
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

interface Row {
  id: number;
  venue?: string;
  gateway?: string;
  temp_id: Buffer;
  metadata: Buffer;
  first_seen: number;
  last_seen: number;
  count: number;
  rssi_min: number;
  rssi_max: number;
  rssi_mean?: number;
  rssi_sum?: number;
  rssi_count?: number;
}

/**
 * Encounters of a collector's database (venue, gateway, mean) or of a gateway's own, always in
 * their wire form: a gateway's millisecond times and RSSI sums go through the wire's rounding
 * rules, so an encounter has one duration and one mean wherever it is read.
 */
export function* encounters(db: Database.Database, from = 0, to = Number.MAX_SAFE_INTEGER): Generator<EncounterRow> {
  const rows = db.prepare('SELECT * FROM encounters WHERE last_seen >= ? AND first_seen < ? ORDER BY first_seen').iterate(from, to);
  for (const r of rows as IterableIterator<Row>) {
    const gatewayRow = r.rssi_sum !== undefined;
    const span = gatewayRow ? wireSpan(r.first_seen, r.last_seen) : { firstSeen: r.first_seen, lastSeen: r.last_seen };
    yield {
      venue: r.venue,
      gateway: r.gateway,
      id: r.id,
      tempId: r.temp_id,
      metadata: r.metadata,
      ...span,
      count: r.count,
      rssiMin: r.rssi_min,
      rssiMax: r.rssi_max,
      rssiMean: gatewayRow ? (r.rssi_count ? meanTenths(r.rssi_sum!, r.rssi_count) / 10 : RSSI_UNAVAILABLE) : (r.rssi_mean ?? null),
    };
  }
}

/** The fields health officers read, in the order `vgw export` and `vgw match --json` print them. */
export function encounterSummary(e: EncounterRow, extra: Record<string, unknown> = {}): Record<string, unknown> {
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
