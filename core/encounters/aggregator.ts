// Turns sightings into encounters: one open encounter per temp ID, closed after a silence
// or a maximum length. The state is a plain object owned by the caller; every function here
// is deterministic in its inputs (time comes from the sightings and the `now` passed in).
import { PROTOCOL_BLUETRACE, RSSI_UNAVAILABLE, Sighting } from '../protocols/index.js';
import type { CloseReason, ClosedEncounter, Encounter } from './encounter.js';
import { mergeMetadata } from '../bluetrace/metadata.js';

export interface AggregatorOptions {
  /** An encounter closes when its temp ID has not been heard for this long. */
  silenceMs: number;
  /**
   * Silence for BlueTrace encounters: a phone exchanges at most every 36–43 s (and the gateway as
   * central skips a phone for 100 s), so an advert-rate silence would split every visit.
   */
  bluetraceSilenceMs?: number;
  /** An encounter closes once it is this long; a new one starts with the next sighting. */
  maxDurationMs: number;
  /** Cap on open encounters; past it one of the least recently heard is closed early. */
  maxOpen: number;
  /** Ascending attenuation thresholds (dB): N thresholds make N+1 buckets. */
  attenuationThresholdsDb: number[];
  /** The gateway cannot decrypt the AEM's TX power, so attenuation = this − RSSI. */
  assumedTxPowerDbm: number;
  /** Longest gap between two sightings credited to a bucket (a missed advert is not time away). */
  bucketGapCapMs: number;
}

export interface AggregatorCounters {
  sightings: number;
  opened: number;
  closedSilence: number;
  closedMaxDuration: number;
  closedEvicted: number;
  closedShutdown: number;
  closedClockStep: number;
}

export interface AggregatorState {
  readonly options: AggregatorOptions;
  readonly open: Map<string, Encounter>;
  readonly counters: AggregatorCounters;
}

export function createAggregator(options: AggregatorOptions): AggregatorState {
  return {
    options,
    open: new Map(),
    counters: {
      sightings: 0,
      opened: 0,
      closedSilence: 0,
      closedMaxDuration: 0,
      closedEvicted: 0,
      closedShutdown: 0,
      closedClockStep: 0,
    },
  };
}

export function attenuationBucket(rssi: number, options: AggregatorOptions): number {
  const attenuation = options.assumedTxPowerDbm - rssi;
  const t = options.attenuationThresholdsDb;
  let bucket = 0;
  while (bucket < t.length && attenuation >= t[bucket]) bucket++;
  return bucket;
}

function encounterKey(s: Sighting): string {
  // latin1 maps each byte to one UTF-16 unit: a cheap, exact Map key for 16 bytes.
  return s.protocol + s.tempId.toString('latin1');
}

function openEncounter(state: AggregatorState, key: string, s: Sighting): void {
  const buckets = state.options.attenuationThresholdsDb.length + 1;
  state.open.set(key, {
    protocol: s.protocol,
    tempId: Buffer.from(s.tempId),
    metadata: Buffer.from(s.metadata),
    firstSeen: s.time,
    lastSeen: s.time,
    count: 1,
    rssiMin: s.rssi,
    rssiMax: s.rssi,
    rssiSum: s.rssi === RSSI_UNAVAILABLE ? 0 : s.rssi,
    rssiCount: s.rssi === RSSI_UNAVAILABLE ? 0 : 1,
    bucketMs: new Array<number>(buckets).fill(0),
    clockSynced: s.clockSynced,
  });
  state.counters.opened++;
}

/** The counter each close reason adds to: a table, so closing builds no string. */
const CLOSED_COUNTER: Record<CloseReason, keyof AggregatorCounters> = {
  silence: 'closedSilence',
  maxDuration: 'closedMaxDuration',
  evicted: 'closedEvicted',
  shutdown: 'closedShutdown',
  clockStep: 'closedClockStep',
};

function close(
  state: AggregatorState,
  key: string,
  enc: Encounter,
  reason: CloseReason,
  out: ClosedEncounter[],
): void {
  state.open.delete(key);
  state.counters[CLOSED_COUNTER[reason]]++;
  out.push(Object.assign(enc, { closeReason: reason }));
}

/** Adds one sighting. Encounters it forces closed (length cap, memory cap) go to `out`. */
export function observe(state: AggregatorState, s: Sighting, out: ClosedEncounter[]): void {
  state.counters.sightings++;
  const key = encounterKey(s);
  const enc = state.open.get(key);
  const o = state.options;
  if (enc === undefined) {
    if (state.open.size >= o.maxOpen) evictLeastRecent(state, out);
    openEncounter(state, key, s);
    return;
  }
  const silenceMs = silenceOf(o, enc.protocol);
  if (s.time - enc.firstSeen >= o.maxDurationMs || s.time - enc.lastSeen >= silenceMs) {
    close(state, key, enc, s.time - enc.lastSeen >= silenceMs ? 'silence' : 'maxDuration', out);
    openEncounter(state, key, s);
    return;
  }
  // A clock stepping back must never make negative durations.
  const gap = s.time > enc.lastSeen ? s.time - enc.lastSeen : 0;
  if (s.time > enc.lastSeen) enc.lastSeen = s.time;
  enc.count++;
  if (!s.clockSynced) enc.clockSynced = false;
  // each BlueTrace exchange adds its role and the phone's RSSI figure to the encounter's metadata
  if (enc.protocol === PROTOCOL_BLUETRACE) enc.metadata = mergeMetadata(enc.metadata, s.metadata);
  if (s.rssi === RSSI_UNAVAILABLE) return;
  if (enc.rssiCount === 0) {
    enc.rssiMin = s.rssi;
    enc.rssiMax = s.rssi;
  } else {
    if (s.rssi < enc.rssiMin) enc.rssiMin = s.rssi;
    if (s.rssi > enc.rssiMax) enc.rssiMax = s.rssi;
  }
  enc.rssiSum += s.rssi;
  enc.rssiCount++;
  enc.bucketMs[attenuationBucket(s.rssi, o)] += gap < o.bucketGapCapMs ? gap : o.bucketGapCapMs;
}

function silenceOf(o: AggregatorOptions, protocol: number): number {
  return protocol === PROTOCOL_BLUETRACE && o.bluetraceSilenceMs !== undefined ? o.bluetraceSilenceMs : o.silenceMs;
}

/** How many of the oldest-opened encounters an eviction compares: O(1) per new temp ID. */
const EVICTION_CANDIDATES = 32;

/**
 * Closes the least recently heard of the oldest-opened encounters. A flood of new temp IDs
 * must cost constant time per ID, so this never scans every open encounter.
 */
function evictLeastRecent(state: AggregatorState, out: ClosedEncounter[]): void {
  let oldestKey: string | undefined;
  let oldest: Encounter | undefined;
  let looked = 0;
  for (const [key, enc] of state.open) {
    if (oldest === undefined || enc.lastSeen < oldest.lastSeen) {
      oldest = enc;
      oldestKey = key;
    }
    if (++looked >= EVICTION_CANDIDATES) break;
  }
  if (oldest !== undefined && oldestKey !== undefined) close(state, oldestKey, oldest, 'evicted', out);
}

/** Closes encounters silent for `silenceMs` or longer than `maxDurationMs` as of `now`. */
export function sweep(state: AggregatorState, now: number, out: ClosedEncounter[]): void {
  const o = state.options;
  for (const [key, enc] of state.open) {
    if (now - enc.lastSeen >= silenceOf(o, enc.protocol)) close(state, key, enc, 'silence', out);
    else if (now - enc.firstSeen >= o.maxDurationMs) close(state, key, enc, 'maxDuration', out);
  }
}

/** Closes everything: on shutdown (no sighting left only in memory), or when the clock steps. */
export function closeAll(state: AggregatorState, out: ClosedEncounter[], reason: 'shutdown' | 'clockStep' = 'shutdown'): void {
  for (const [key, enc] of state.open) close(state, key, enc, reason, out);
}
