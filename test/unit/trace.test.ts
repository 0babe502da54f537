// The health officer's two BlueTrace questions, on hand-made encounters: temp IDs issued with the
// backend's key for known UIDs at known times, so every answer is known in advance. Validity is
// checked as OpenTrace's server checks an uploaded record (processUploadedData: the timestamp
// must lie within [startTime, expiryTime]; refusals no_msg, expired_id, failed_decryption).
import { describe, expect, it } from 'vitest';
import { encryptTempId, newUid } from '../../core/bluetrace/index.js';
import type { VenueEncounter } from '../../core/encounters/index.js';
import {
  caseVisits, coPresent, DEFAULT_MARGIN_MS, historyTimestampMs, historyVisits, newInvalidCounts, parseHistory, type HistoryRecord,
} from '../../core/matching/index.js';
import { PROTOCOL_BLUETRACE, PROTOCOL_EN, RSSI_UNAVAILABLE } from '../../core/protocols/index.js';

const key = Buffer.alloc(32, 9);
const otherKey = Buffer.alloc(32, 8);
const T0 = 1_795_000_000; // unix seconds
const ms = (s: number) => s * 1000;

let nextId = 1;
/** A gateway encounter of `uid` at `venue` over [fromS, toS], its temp ID valid over [validFrom, validTo]. */
function bt(venue: string, uid: string, fromS: number, toS: number, o: { validFrom?: number; validTo?: number; key?: Buffer; rssiMax?: number } = {}): VenueEncounter {
  const tempId = Buffer.from(encryptTempId(o.key ?? key, uid, o.validFrom ?? fromS - 60, o.validTo ?? fromS + 840), 'base64');
  return {
    id: nextId++, venue, gateway: `gw-${venue}`, protocol: PROTOCOL_BLUETRACE, tempId, metadata: Buffer.alloc(4),
    firstSeen: ms(fromS), lastSeen: ms(toS), count: 1, rssiMin: o.rssiMax ?? -70, rssiMax: o.rssiMax ?? -60, rssiMean: -65,
    attenuationS: [0, 0, 0], clockSynced: true,
  };
}
function en(venue: string, fromS: number, toS: number): VenueEncounter {
  return { ...bt(venue, newUid(), fromS, toS), protocol: PROTOCOL_EN, tempId: Buffer.alloc(16, 1), metadata: Buffer.alloc(4) };
}

const alice = newUid(); // the case
const bob = newUid();
const carol = newUid();
const dave = newUid();

describe('trace (a): a case UID → venue visits → the others present', () => {
  const mall = [
    bt('mall', alice, T0, T0 + 300),
    bt('mall', alice, T0 + 400, T0 + 600), // a new temp ID 100 s later: the same visit
    bt('mall', bob, T0 + 100, T0 + 200), // inside the visit
    bt('mall', carol, T0 + 700, T0 + 800), // 100 s after it: within the 150 s margin, no overlap
    bt('mall', dave, T0 + 2000, T0 + 2100), // long after: not a contact
    en('mall', T0 + 50, T0 + 250),
    bt('market', bob, T0 + 100, T0 + 200), // another venue: not alice's visit
  ];

  it('finds the visit, merges its encounters, and lists the co-present by UID with their overlap', () => {
    const v = caseVisits(key, [alice], mall);
    expect(v.presences).toHaveLength(1);
    const p = v.presences[0];
    expect(p).toMatchObject({ venue: 'mall', from: ms(T0), to: ms(T0 + 600) });
    expect(p.evidence).toEqual([{ gateway: 'gw-mall', id: mall[0].id }, { gateway: 'gw-mall', id: mall[1].id }]);
    expect(v.opened).toBe(6);
    const invalid = newInvalidCounts();
    const answer = coPresent(key, p, mall, new Set([alice]), invalid);
    expect(answer.contacts.map((c) => c.uid)).toEqual([bob, carol]);
    expect(answer.contacts[0]).toMatchObject({ overlapS: 100, rssiMax: -60, encounters: [{ gateway: 'gw-mall', id: mall[2].id }] });
    expect(answer.contacts[1].overlapS).toBe(0); // near the visit, not during it
    expect(answer.anonymousEncounters).toBe(1);
    expect(invalid).toEqual({ no_msg: 0, expired_id: 0, failed_decryption: 0 });
  });

  it('a margin of 0 keeps only those present during the visit', () => {
    const p = caseVisits(key, [alice], mall, 0).presences[0];
    expect(coPresent(key, p, mall, new Set([alice]), newInvalidCounts(), 0).contacts.map((c) => c.uid)).toEqual([bob]);
  });

  it('visits farther apart than twice the margin stay two visits', () => {
    const gap = (2 * DEFAULT_MARGIN_MS) / 1000 + 1;
    const v = caseVisits(key, [alice], [bt('mall', alice, T0, T0 + 10), bt('mall', alice, T0 + 10 + gap, T0 + 20 + gap)]);
    expect(v.presences).toHaveLength(2);
  });

  it('refuses a sighting outside its temp ID validity (expired_id) and a temp ID of another key (failed_decryption)', () => {
    const replayed = bt('mall', alice, T0 + 5000, T0 + 5100, { validFrom: T0 - 60, validTo: T0 + 840 });
    const forged = bt('mall', alice, T0, T0 + 10, { key: otherKey });
    const v = caseVisits(key, [alice], [replayed, forged]);
    expect(v.presences).toEqual([]);
    expect(v.invalid).toEqual({ no_msg: 0, expired_id: 1, failed_decryption: 1 });
    // the bound is inclusive, as OpenTrace's: a sighting at the very expiry counts
    const edge = bt('mall', alice, T0, T0 + 900, { validFrom: T0, validTo: T0 + 900 });
    expect(caseVisits(key, [alice], [edge]).presences).toHaveLength(1);
    // a contact whose temp ID was replayed out of its validity is not named
    const p = caseVisits(key, [alice], [mall[0]]).presences[0];
    const invalid = newInvalidCounts();
    const c = coPresent(key, p, [bt('mall', bob, T0 + 10, T0 + 20, { validFrom: T0 - 5000, validTo: T0 - 4000 })], new Set([alice]), invalid);
    expect(c.contacts).toEqual([]);
    expect(invalid.expired_id).toBe(1);
  });

  it('an unknown link RSSI is null, not 127', () => {
    const p = caseVisits(key, [alice], [mall[0]]).presences[0];
    const c = coPresent(key, p, [bt('mall', bob, T0, T0 + 10, { rssiMax: RSSI_UNAVAILABLE })], new Set(), newInvalidCounts());
    expect(c.contacts[0].rssiMax).toBeNull();
  });

  it('names a text that is not a UID', () => {
    expect(() => caseVisits(key, ['not-a-uid'], [])).toThrow(/"not-a-uid" is not a BlueTrace UID: expected 28 base64 characters/);
  });
});

describe('trace (b): an uploaded history → the venue and time → the others present', () => {
  const venueUid = newUid();
  const venues = new Map([[venueUid, 'mall']]);
  const venueTempId = encryptTempId(key, venueUid, T0 - 60, T0 + 840);
  const phoneTempId = encryptTempId(key, bob, T0 - 60, T0 + 840);
  const records: HistoryRecord[] = [
    { timestamp: ms(T0 + 100), msg: venueTempId, modelC: 'Pixel 7', modelP: 'venue-gateway', rssi: -60, org: 'ID_PL' }, // ms
    { timestamp: T0 + 300, msg: venueTempId, modelC: 'venue-gateway', modelP: 'Pixel 7', rssi: -62, org: 'ID_PL' }, // seconds
    { timestamp: T0 + 200, msg: phoneTempId, modelC: 'Pixel 7', modelP: 'SM-A515F', rssi: -70, org: 'ID_PL' }, // a phone
    { timestamp: T0 + 5000, msg: venueTempId, modelC: 'Pixel 7', modelP: 'venue-gateway', rssi: -60, org: 'ID_PL' }, // expired
    { timestamp: T0 + 100, modelC: 'Pixel 7', modelP: 'x', rssi: -60, org: 'ID_PL' }, // no msg
    { timestamp: T0 + 100, msg: encryptTempId(otherKey, venueUid, T0, T0 + 900), modelC: 'a', modelP: 'b', rssi: -1, org: 'ID_PL' },
  ];

  it('places the case at the venue from its records, seconds or milliseconds, and counts the rest by reason', () => {
    expect(historyTimestampMs(T0)).toBe(ms(T0));
    expect(historyTimestampMs(ms(T0))).toBe(ms(T0));
    const v = historyVisits(key, records, venues);
    expect(v.presences).toEqual([{ venue: 'mall', from: ms(T0 + 100), to: ms(T0 + 300), evidence: [0, 1] }]);
    expect(v.venueRecords).toBe(2);
    expect(v.phoneRecords).toBe(1);
    expect(v.invalid).toEqual({ no_msg: 1, expired_id: 1, failed_decryption: 1 });
    const c = coPresent(key, v.presences[0], [bt('mall', carol, T0 + 150, T0 + 250), bt('mall', dave, T0 + 3000, T0 + 3100)], new Set(), newInvalidCounts());
    expect(c.contacts.map((x) => x.uid)).toEqual([carol]);
  });

  it("reads OpenTrace's upload file or bare records, and names a bad record's field", () => {
    const upload = JSON.stringify({ token: 't', records: records.slice(0, 2), events: [] });
    expect(parseHistory(upload)).toHaveLength(2);
    expect(parseHistory(JSON.stringify(records))).toHaveLength(records.length);
    expect(() => parseHistory('{"records": [{"timestamp": "yesterday", "msg": "x"}]}')).toThrow(/records\[0\]\.timestamp: expected a number/);
    expect(() => parseHistory('{"records": [{"timestamp": 1, "msg": 5}]}')).toThrow(/records\[0\]\.msg: expected the peer's temp ID/);
    expect(() => parseHistory('{"token": "t"}')).toThrow(/expected OpenTrace's upload \{"records": \[\.\.\.\]\}/);
    expect(() => parseHistory('nope')).toThrow(/not JSON/);
  });
});
