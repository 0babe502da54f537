// The collector's encounter columns, one reading for both databases (SQLite and PostgreSQL store
// the same columns; PostgreSQL returns booleans and arrays where SQLite has 0/1 and JSON text).
import type { VenueEncounter } from '../core/encounters/index.js';

/** The columns encounterFromCollected reads, as both stores select them. */
export const ENCOUNTER_COLUMNS = 'gateway, life, id, venue, protocol, temp_id, metadata, first_seen, last_seen, count, rssi_min, rssi_max, rssi_mean, attenuation_s, clock_synced';

export interface CollectedColumns {
  gateway: string;
  venue: string;
  life: string;
  id: number;
  protocol: number;
  temp_id: Buffer;
  metadata: Buffer;
  first_seen: number;
  last_seen: number;
  count: number;
  rssi_min: number;
  rssi_max: number;
  rssi_mean: number;
  attenuation_s: string | number[];
  clock_synced: number | boolean;
}

/** The one reading of the collector's encounter columns: the settled encounter as it arrived. */
export function encounterFromCollected(r: CollectedColumns): VenueEncounter {
  return {
    venue: r.venue,
    gateway: r.gateway,
    life: r.life,
    id: r.id,
    protocol: r.protocol,
    tempId: r.temp_id,
    metadata: r.metadata,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    rssiMin: r.rssi_min,
    rssiMax: r.rssi_max,
    rssiMean: r.rssi_mean,
    attenuationS: typeof r.attenuation_s === 'string' ? (JSON.parse(r.attenuation_s) as number[]) : r.attenuation_s,
    clockSynced: r.clock_synced === 1 || r.clock_synced === true,
  };
}
