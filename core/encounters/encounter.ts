// The one encounter record, for every protocol (temp IDs and metadata are as long as their
// protocol makes them), in its two forms: as the gateway measures it (milliseconds, RSSI sums),
// and settled as the wire, the backend and exports carry it (whole seconds, a rounded mean).
// `toWire` is the one conversion between them; the codec only lays settled encounters out.
import { RSSI_UNAVAILABLE } from '../protocols/index.js';

/** What both forms say of one temp ID's visit; times are unix ms. */
interface EncounterFields {
  protocol: number;
  tempId: Buffer;
  metadata: Buffer;
  firstSeen: number;
  lastSeen: number;
  count: number;
  /** 127 (RSSI_UNAVAILABLE) for both when no sighting had an RSSI. */
  rssiMin: number;
  rssiMax: number;
  /** false when some sighting was stamped before the clock was synchronised: times are suspect. */
  clockSynced: boolean;
}

/** What the gateway knows about one temp ID's visit; the store names it (`StoredEncounter`). */
export interface Encounter extends EncounterFields {
  rssiSum: number;
  /** Sightings with a known RSSI (the statistics cover these); min = max = 127 when none. */
  rssiCount: number;
  /** Milliseconds spent in each attenuation bucket. */
  bucketMs: number[];
}

export type CloseReason = 'silence' | 'maxDuration' | 'evicted' | 'shutdown' | 'clockStep';

export interface ClosedEncounter extends Encounter {
  closeReason: CloseReason;
}

/** (gateway, life, id) names an encounter forever: the store draws the id within its life. */
export type StoredEncounter = Encounter & { id: number; life: string };

/**
 * An encounter settled, as it travels and as the backend keeps it: times are whole seconds
 * (first seen rounded down, last seen up), the mean RSSI is a whole number of tenths of a dBm,
 * buckets are whole seconds.
 */
export interface WireEncounter extends EncounterFields {
  id: number;
  rssiMean: number;
  attenuationS: number[];
}

/** A settled encounter where the backend placed it: the venue, gateway and life it came from. */
export type VenueEncounter = WireEncounter & { venue?: string; gateway?: string; life?: string };

/**
 * Whole seconds per attenuation bucket, rounded cumulatively (halves up): bucket i gets
 * round(Σ0..i) − round(Σ0..i−1), so the buckets sum to the credited time rounded once and never
 * exceed the whole-second duration. The store and the wire both use it (docs/protocol.md).
 */
export function bucketSeconds(bucketMs: readonly number[]): number[] {
  const halfUp = (ms: number) => Math.floor((ms + 500) / 1000);
  let credited = 0;
  return bucketMs.map((ms) => {
    const before = halfUp(credited);
    credited += Math.round(ms);
    return halfUp(credited) - before;
  });
}

/**
 * The one conversion from the gateway's encounter to its settled form (the wire's, the backend's, the export's); protocol.md states
 * each rule. Buckets are rounded cumulatively (`bucketSeconds`), so the residual the wire carries
 * is 0–2 s unless time went uncredited.
 */
export function toWire(e: Encounter & { id: number }): WireEncounter {
  const { firstSeen, lastSeen } = wireSpan(e.firstSeen, e.lastSeen);
  return {
    id: e.id,
    protocol: e.protocol,
    tempId: e.tempId,
    metadata: e.metadata,
    firstSeen,
    lastSeen,
    count: e.count,
    rssiMin: e.rssiMin,
    rssiMax: e.rssiMax,
    rssiMean: e.rssiCount === 0 ? RSSI_UNAVAILABLE : meanTenths(e.rssiSum, e.rssiCount) / 10,
    attenuationS: bucketSeconds(e.bucketMs),
    clockSynced: e.clockSynced,
  };
}

/** First seen rounded down and last seen up to whole seconds (in ms): the span covers every sighting. */
export function wireSpan(firstSeenMs: number, lastSeenMs: number): { firstSeen: number; lastSeen: number } {
  const firstSeen = Math.floor(firstSeenMs / 1000) * 1000;
  return { firstSeen, lastSeen: Math.max(firstSeen, Math.ceil(lastSeenMs / 1000) * 1000) };
}

/**
 * A pull's range [from, to) selects encounters by their times as the wire carries them (wireSpan):
 * wire last seen ≥ from and wire first seen < to, so a consumer reproduces a pull from what it
 * stored. On the stored milliseconds that is exactly last seen > `lastSeenAbove` and first seen
 * < `firstSeenBelow` (ceil(last / 1000) ≥ from / 1000 ⟺ last > (⌈from / 1000⌉ − 1) · 1000).
 */
export function pullBounds(from: number, to: number): { lastSeenAbove: number; firstSeenBelow: number } {
  return { lastSeenAbove: (Math.ceil(from / 1000) - 1) * 1000, firstSeenBelow: Math.ceil(to / 1000) * 1000 };
}

/** 10 × sum / count rounded to the nearest integer, halves toward +∞, in integer arithmetic. */
export function meanTenths(sum: number, count: number): number {
  return Math.floor((20 * sum + count) / (2 * count));
}

