// The gateway's encounter rows: the one reading of its columns (the store, `vgw export`, `vgw
// match`) and the bucket times as they are stored.
import { decode as cborDecode, encode as cborEncode } from 'cbor-x';
import { bucketSeconds, type StoredEncounter } from '../../core/encounters/index.js';

/** An encounter as its table's columns hold it. */
export interface EncounterColumns {
  id: number;
  protocol: number;
  temp_id: Buffer;
  metadata: Buffer;
  first_seen: number;
  last_seen: number;
  count: number;
  rssi_min: number;
  rssi_max: number;
  rssi_sum: number;
  rssi_count: number;
  /** Whole seconds per attenuation bucket (see bucketSecondsBlob). */
  bucket_s: Buffer | string;
  clock_synced: number;
}

/**
 * Bucket times as stored: whole seconds, as the wire sends them, as a CBOR array (about 6
 * bytes for 4 buckets, where JSON text took 12; every byte of a row is written about twice on
 * the SD card, to the WAL and then into the file).
 */
export const bucketSecondsBlob = (bucketMs: number[]): Buffer => cborEncode(bucketSeconds(bucketMs));

/** Bucket milliseconds from a stored row: a CBOR blob, or JSON text in rows written before it. */
function bucketMsFromRow(stored: Buffer | string): number[] {
  const seconds = (typeof stored === 'string' ? JSON.parse(stored) : cborDecode(stored)) as number[];
  return seconds.map((s) => s * 1000);
}

/** The one reading of the gateway's encounter columns (the store, `vgw export`, `vgw match`). */
export function encounterFromColumns(r: EncounterColumns, life: string): StoredEncounter {
  return {
    id: r.id,
    life,
    protocol: r.protocol,
    tempId: r.temp_id,
    metadata: r.metadata,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    count: r.count,
    rssiMin: r.rssi_min,
    rssiMax: r.rssi_max,
    rssiSum: r.rssi_sum,
    rssiCount: r.rssi_count,
    bucketMs: bucketMsFromRow(r.bucket_s),
    clockSynced: r.clock_synced === 1,
  };
}
