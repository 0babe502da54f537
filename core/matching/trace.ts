// BlueTrace contact tracing at venues, the health officer's two questions, answered with the
// backend's temp ID key (only the backend can open a temp ID, and only to answer one of these):
//   (a) a confirmed case's UIDs → the venue encounters carrying their temp IDs → who else was there;
//   (b) a case's uploaded phone history → the records holding a venue's temp IDs → the venue and
//       time → who else was there.
// Each opened temp ID is checked as OpenTrace's server checks an uploaded record: the sighting
// must lie within [start, expiry] of the temp ID, or it is refused as `expired_id`. Pure functions;
// `vgw trace` reads the files and databases.
import { decryptTempId, UID_TEXT_PATTERN } from '../bluetrace/index.js';
import { PROTOCOL_BLUETRACE, PROTOCOL_EN, RSSI_UNAVAILABLE } from '../protocols/index.js';
import type { VenueEncounter } from '../encounters/index.js';
import { z } from 'zod';

/** Why a temp ID did not count: OpenTrace's server names its invalid records the same way. */
export type InvalidReason = 'no_msg' | 'expired_id' | 'failed_decryption';
export type InvalidCounts = Record<InvalidReason, number>;

export function newInvalidCounts(): InvalidCounts {
  return { no_msg: 0, expired_id: 0, failed_decryption: 0 };
}

/**
 * How far either side of a known presence another visitor still counts as co-present. A phone
 * in range exchanges with a venue at most once per scan cycle plus the 100 s skip (~140 s), so
 * someone present can go unseen that long on either side of what was logged.
 */
export const DEFAULT_MARGIN_MS = 150_000;

/** The uid a temp ID carries, when it opens with the key and [fromMs, toMs] lies within its validity. */
export function openTempId(
  key: Buffer,
  tempId: Uint8Array | string | undefined,
  fromMs: number,
  toMs: number,
  invalid: InvalidCounts,
): string | null {
  if (tempId === undefined || tempId.length === 0) {
    invalid.no_msg++;
    return null;
  }
  const d = decryptTempId(key, tempId);
  if (!d) {
    invalid.failed_decryption++;
    return null;
  }
  if (fromMs < d.start * 1000 || toMs > d.expiry * 1000) {
    invalid.expired_id++;
    return null;
  }
  return d.uid;
}

/** Throws a RangeError naming the first text that is not a BlueTrace UID. */
export function checkUids(uids: readonly string[]): void {
  for (const uid of uids) if (!UID_TEXT_PATTERN.test(uid)) throw new RangeError(`${JSON.stringify(uid)} is not a BlueTrace UID: expected 28 base64 characters (21 bytes)`);
}

/** A gateway encounter as `vgw export` names it: encounter ids are unique per gateway. */
export interface EncounterRef {
  gateway: string | null;
  id: number;
}

/** What placed someone at a venue: a gateway encounter (question a) or a history record's index (b). */
export type Evidence = EncounterRef | number;

/** A span of time someone of interest was at a venue: merged sightings, each kept as evidence. */
export interface Presence {
  venue: string | null;
  /** Unix ms. */
  from: number;
  to: number;
  evidence: Evidence[];
}

/** One visitor present with someone of interest, identified by the UID their temp IDs carry. */
export interface Contact {
  uid: string;
  /** Unix ms of their own encounters that overlap the presence (with the margin). */
  firstSeen: number;
  lastSeen: number;
  /** Seconds their encounters overlap the presence itself (no margin): 0 means only near it. */
  overlapS: number;
  /** Strongest link RSSI the gateway measured; null when the controller never told. */
  rssiMax: number | null;
  encounters: EncounterRef[];
}

export interface PresenceContacts {
  presence: Presence;
  /** BlueTrace visitors, strongest overlap first: the contacts to notify. */
  contacts: Contact[];
  /**
   * Exposure Notification encounters in the same window: their owners cannot be named (their
   * app learns of the exposure from the case's diagnosis keys), but they are part of the picture.
   */
  anonymousEncounters: number;
}

/** Sorted spans at one venue, merged where their margins overlap. */
type Span = { venue: string | null; from: number; to: number; evidence: Evidence };

function mergePresences(spans: Span[], marginMs: number): Presence[] {
  spans.sort((a, b) => (a.venue ?? '').localeCompare(b.venue ?? '') || a.from - b.from);
  const out: Presence[] = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && last.venue === s.venue && s.from - marginMs <= last.to + marginMs) {
      last.to = Math.max(last.to, s.to);
      last.evidence.push(s.evidence);
    } else {
      out.push({ venue: s.venue, from: s.from, to: s.to, evidence: [s.evidence] });
    }
  }
  return out.sort((a, b) => a.from - b.from);
}

export interface CaseVisits {
  presences: Presence[];
  /** BlueTrace encounters opened; refusals by reason (other people's encounters are not counted as refusals). */
  opened: number;
  invalid: InvalidCounts;
}

/**
 * Question (a), first half: the venue encounters whose temp IDs open to one of the case's UIDs,
 * within their validity, merged into presences per venue.
 */
export function caseVisits(key: Buffer, caseUids: readonly string[], encounters: Iterable<VenueEncounter>, marginMs = DEFAULT_MARGIN_MS): CaseVisits {
  checkUids(caseUids);
  const wanted = new Set(caseUids);
  const invalid = newInvalidCounts();
  const spans: Span[] = [];
  let opened = 0;
  for (const e of encounters) {
    if (e.protocol !== PROTOCOL_BLUETRACE) continue;
    const uid = openTempId(key, e.tempId, e.firstSeen, e.lastSeen, invalid);
    if (uid === null) continue;
    opened++;
    if (wanted.has(uid)) spans.push({ venue: e.venue ?? null, from: e.firstSeen, to: e.lastSeen, evidence: { gateway: e.gateway ?? null, id: e.id } });
  }
  return { presences: mergePresences(spans, marginMs), opened, invalid };
}

/** One record of an uploaded phone history (OpenTrace's StreetPassRecord). */
export interface HistoryRecord {
  /** Unix seconds or ms (OpenTrace's server takes anything above 10^10 as ms). */
  timestamp: number;
  /** The peer's temp ID, base64. */
  msg?: string;
  org?: string;
  modelC?: string;
  modelP?: string;
  rssi?: number;
}

const historyRecordSchema = z.object({
  timestamp: z.number({ message: 'expected a number: unix seconds or milliseconds' }).finite().nonnegative(),
  msg: z.string({ message: "expected the peer's temp ID as a base64 string" }).optional(),
  org: z.string().optional(),
  modelC: z.string().optional(),
  modelP: z.string().optional(),
  rssi: z.number().optional(),
  txPower: z.number().optional(),
});

export class HistoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryError';
  }
}

/**
 * An uploaded history as OpenTrace's app uploads it ({token, records: [...], events: [...]}) or
 * its records alone; an error names the record and field. A record without `msg` is kept: it
 * counts as `no_msg`, as OpenTrace's server counts it.
 */
export function parseHistory(text: string): HistoryRecord[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new HistoryError(`not JSON (${(err as Error).message}): expected OpenTrace's upload {"records": [...]} or an array of records`);
  }
  const records = Array.isArray(json) ? json : (json as { records?: unknown } | null)?.records;
  if (!Array.isArray(records)) throw new HistoryError('expected OpenTrace\'s upload {"records": [...]} or an array of records');
  return records.map((r, i) => {
    const parsed = historyRecordSchema.safeParse(r);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new HistoryError(`records[${i}]${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}`);
  });
}

/** Seconds or milliseconds, as OpenTrace's server tells them apart, to ms. */
export function historyTimestampMs(t: number): number {
  return t > 10_000_000_000 ? t : t * 1000;
}

export interface HistoryVisits {
  presences: Presence[];
  /** Valid records of other phones: the ordinary BlueTrace contacts, not this query's. */
  phoneRecords: number;
  venueRecords: number;
  invalid: InvalidCounts;
}

/**
 * Question (b), first half: the records of an uploaded history whose temp IDs open to a venue's
 * registered UID (`venueOfUid`), within their validity, merged into presences per venue.
 */
export function historyVisits(key: Buffer, records: readonly HistoryRecord[], venueOfUid: ReadonlyMap<string, string>, marginMs = DEFAULT_MARGIN_MS): HistoryVisits {
  const invalid = newInvalidCounts();
  const spans: Span[] = [];
  let phoneRecords = 0;
  records.forEach((r, index) => {
    const t = historyTimestampMs(r.timestamp);
    const uid = openTempId(key, r.msg, t, t, invalid);
    if (uid === null) return;
    const venue = venueOfUid.get(uid);
    if (venue === undefined) phoneRecords++;
    else spans.push({ venue, from: t, to: t, evidence: index });
  });
  return { presences: mergePresences(spans, marginMs), phoneRecords, venueRecords: spans.length, invalid };
}

/**
 * The second half of both questions: everyone else whose encounters at the presence's venue
 * overlap it, give or take the margin. `encounters` should hold that venue's encounters around
 * the presence (more does no harm: other venues and times are skipped). `excludeUids` are the
 * case's own. Every temp ID opened is checked against its validity like the case's.
 */
export function coPresent(
  key: Buffer,
  presence: Presence,
  encounters: Iterable<VenueEncounter>,
  excludeUids: ReadonlySet<string>,
  invalid: InvalidCounts,
  marginMs = DEFAULT_MARGIN_MS,
): PresenceContacts {
  const from = presence.from - marginMs;
  const to = presence.to + marginMs;
  const byUid = new Map<string, Contact>();
  let anonymousEncounters = 0;
  for (const e of encounters) {
    if ((e.venue ?? null) !== presence.venue || e.lastSeen < from || e.firstSeen > to) continue;
    if (e.protocol === PROTOCOL_EN) {
      anonymousEncounters++;
      continue;
    }
    if (e.protocol !== PROTOCOL_BLUETRACE) continue;
    const uid = openTempId(key, e.tempId, e.firstSeen, e.lastSeen, invalid);
    if (uid === null || excludeUids.has(uid)) continue;
    const overlapMs = Math.max(0, Math.min(presence.to, e.lastSeen) - Math.max(presence.from, e.firstSeen));
    const rssi = e.rssiMax === RSSI_UNAVAILABLE ? null : e.rssiMax;
    const ref = { gateway: e.gateway ?? null, id: e.id };
    const c = byUid.get(uid);
    if (!c) {
      byUid.set(uid, { uid, firstSeen: e.firstSeen, lastSeen: e.lastSeen, overlapS: overlapMs / 1000, rssiMax: rssi, encounters: [ref] });
      continue;
    }
    c.firstSeen = Math.min(c.firstSeen, e.firstSeen);
    c.lastSeen = Math.max(c.lastSeen, e.lastSeen);
    c.overlapS += overlapMs / 1000;
    if (rssi !== null) c.rssiMax = c.rssiMax === null ? rssi : Math.max(c.rssiMax, rssi);
    c.encounters.push(ref);
  }
  const contacts = [...byUid.values()].sort((a, b) => b.overlapS - a.overlapS || a.uid.localeCompare(b.uid));
  return { presence, contacts, anonymousEncounters };
}
