// BlueTrace's pure core: temp IDs as OpenTrace's cloud functions make them, the two GATT
// payloads, the metadata a BlueTrace encounter keeps, and BlueTrace encounters on the wire.
// Layout facts: ../shared/reference/bluetrace_opentrace_facts.json (OpenTrace, GPL-3.0; facts only).
import { createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import {
  mergeMetadata, ROLE_BOTH, rsForPhone,
  decodeMetadata, decryptTempId, encodeMetadata, encryptTempId, issueTempIds, MAX_METADATA_BYTES, newPayloadRefusals, newUid,
  parsePayload, readPayload, ROLE_CENTRAL, ROLE_PERIPHERAL, TEMPID_BYTES, tempIdBytes, writePayload,
} from '../../core/bluetrace/index.js';
import { closeAll, type ClosedEncounter, createAggregator, observe, toWire } from '../../core/encounters/index.js';
import { aggregatorOptions } from '../../core/config/index.js';
import { PROTOCOL_BLUETRACE, PROTOCOL_EN } from '../../core/protocols/index.js';
import { decodeBatch, encodeBatch, WireFormatError } from '../../core/wire/index.js';

const key = Buffer.alloc(32, 7);

describe('BlueTrace temp IDs', () => {
  it('are 84 base64 characters of 61 bytes: AES-256-GCM of UID ‖ start ‖ expiry, then IV (16) and tag (16)', () => {
    const uid = newUid();
    const id = encryptTempId(key, uid, 1_795_000_000, 1_795_000_900);
    expect(id).toHaveLength(84);
    expect(id.endsWith('==')).toBe(true); // 61 = 3·20 + 1 bytes: two padding characters
    const bytes = tempIdBytes(id)!;
    expect(bytes).toHaveLength(TEMPID_BYTES);
    expect(TEMPID_BYTES).toBe(61);
    // decrypt by hand with the layout of the facts file, not with the module's own function
    const d = createDecipheriv('aes-256-gcm', key, bytes.subarray(29, 45), { authTagLength: 16 });
    d.setAuthTag(bytes.subarray(45));
    const plain = Buffer.concat([d.update(bytes.subarray(0, 29)), d.final()]);
    expect(plain.subarray(0, 21).toString('base64')).toBe(uid);
    expect(plain.readInt32BE(21)).toBe(1_795_000_000);
    expect(plain.readInt32BE(25)).toBe(1_795_000_900);
    expect(decryptTempId(key, id)).toEqual({ uid, start: 1_795_000_000, expiry: 1_795_000_900 });
  });

  it('are issued 100 at a time, 15 minutes each, the first valid a minute early (OpenTrace getTempIDs)', () => {
    const ids = issueTempIds(key, newUid(), 1_795_000_000);
    expect(ids).toHaveLength(100);
    expect(ids[0]).toMatchObject({ start: 1_795_000_000 - 60, expiry: 1_795_000_000 - 60 + 900 });
    expect(ids[99].start).toBe(1_795_000_000 + 99 * 900 - 60);
    expect(new Set(ids.map((i) => i.tempId)).size).toBe(100);
  });

  it('refuse another key, an altered byte and anything that is not 84 base64 characters', () => {
    const id = encryptTempId(key, newUid(), 10, 910);
    expect(decryptTempId(Buffer.alloc(32, 8), id)).toBeNull();
    const bytes = tempIdBytes(id)!;
    bytes[3] ^= 1;
    expect(decryptTempId(key, bytes)).toBeNull();
    for (const bad of [id.slice(1), id + 'A', id.replace(/.$/, 'A'), '!'.repeat(84), 42, null, randomBytes(62).toString('base64')]) {
      expect(tempIdBytes(bad)).toBeNull();
    }
  });
});

describe('BlueTrace payloads', () => {
  const tempId = encryptTempId(key, newUid(), 10, 910);

  it('round-trip both ways, whatever the field order', () => {
    const r = newPayloadRefusals();
    expect(JSON.parse(readPayload(tempId, 'ID_PL', 'venue-gateway').toString())).toEqual({ v: 2, id: tempId, o: 'ID_PL', mp: 'venue-gateway' });
    expect(parsePayload(readPayload(tempId, 'ID_PL', 'Pixel 7'), 'read', r)).toEqual({ tempId: tempIdBytes(tempId), org: 'ID_PL', model: 'Pixel 7' });
    const reordered = Buffer.from(JSON.stringify({ mc: 'SM-A515F', rs: -63, o: 'SG_OTC', id: tempId, v: 2 }));
    expect(parsePayload(reordered, 'write', r)).toEqual({ tempId: tempIdBytes(tempId), org: 'SG_OTC', model: 'SM-A515F', rs: -63 });
    expect(parsePayload(writePayload(tempId, 'ID_PL', 'x', -70), 'write', r)?.rs).toBe(-70);
    expect(Object.values(r).every((n) => n === 0)).toBe(true);
  });

  it('refuses hostile writes with a reason, never a throw', () => {
    const r = newPayloadRefusals();
    const ok = { v: 2, id: tempId, o: 'ID_PL', mc: 'Pixel', rs: -60 };
    const cases: Array<[unknown, keyof typeof r]> = [
      [Buffer.alloc(600, 0x20), 'tooLong'],
      [Buffer.from('not json'), 'notJson'],
      [Buffer.from([0xff, 0xfe, 0x7b]), 'notJson'],
      [Buffer.from('[1,2]'), 'notJson'],
      [{ ...ok, v: 1 }, 'wrongVersion'],
      [{ ...ok, id: tempId.slice(2) }, 'badTempId'],
      [{ ...ok, id: 12 }, 'badTempId'],
      [{ ...ok, o: '' }, 'badOrg'],
      [{ ...ok, o: 'x'.repeat(33) }, 'badOrg'],
      [{ ...ok, mc: undefined }, 'badModel'],
      [{ ...ok, rs: -60.5 }, 'badRssi'],
      [{ ...ok, rs: '-60' }, 'badRssi'],
      [{ ...ok, rs: 21 }, 'badRssi'],
      [{ ...ok, rs: 126 }, 'badRssi'],
      [{ ...ok, rs: -128 }, 'badRssi'],
    ];
    for (const [input, reason] of cases) {
      const bytes = Buffer.isBuffer(input) ? input : Buffer.from(JSON.stringify(input));
      const before = r[reason];
      expect(parsePayload(bytes, 'write', r), reason).toBeNull();
      expect(r[reason], reason).toBe(before + 1);
    }
    // 127, HCI's "not available", may come from a central without an RSSI; it is accepted as such
    expect(parsePayload(Buffer.from(JSON.stringify({ ...ok, rs: 127 })), 'write', r)?.rs).toBe(127);
    expect(parsePayload(Buffer.from(JSON.stringify({ ...ok, rs: -127 })), 'write', r)?.rs).toBe(-127);
    // the gateway itself writes phones what OpenTrace can read: the weakest signal where it measured none
    expect([rsForPhone(127), rsForPhone(-58), rsForPhone(-127), rsForPhone(20)]).toEqual([-127, -58, -127, 20]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), (b) => {
      parsePayload(b, 'write', r);
      parsePayload(b, 'read', r);
    }));
  });
});

describe('BlueTrace encounters', () => {
  it('keep role, the phone-measured RSSI, org and model as metadata bytes', () => {
    const m = { role: ROLE_PERIPHERAL, rs: -61, org: 'ID_PL', model: 'Galaxy A12' } as const;
    const bytes = encodeMetadata(m);
    expect(bytes.length).toBe(4 + 5 + 10);
    expect(decodeMetadata(bytes)).toEqual(m);
    expect(decodeMetadata(encodeMetadata({ role: ROLE_CENTRAL, rs: 127, org: 'o'.repeat(32), model: 'm'.repeat(64) }))?.rs).toBe(127);
    expect(encodeMetadata({ role: ROLE_CENTRAL, rs: 127, org: 'o'.repeat(32), model: 'm'.repeat(64) }).length).toBe(MAX_METADATA_BYTES);
    expect(decodeMetadata(bytes.subarray(0, 10))).toBeNull();
    expect(decodeMetadata(Buffer.from([9, 0, 0, 0]))).toBeNull();
  });

  it("keep every exchange's role and the phone's strongest RSSI, in the same bytes (an encounter met in both roles says so)", () => {
    const peripheral = (rs: number) => encodeMetadata({ role: ROLE_PERIPHERAL, rs, org: 'ID_PL', model: 'Galaxy A12' });
    const central = encodeMetadata({ role: ROLE_CENTRAL, rs: 127, org: 'ID_PL', model: 'Galaxy A12' });
    // central first, as when the gateway's scan found the phone before the phone found it
    let held = mergeMetadata(central, peripheral(-70));
    expect(decodeMetadata(held)).toEqual({ role: ROLE_BOTH, rs: -70, org: 'ID_PL', model: 'Galaxy A12' });
    held = mergeMetadata(held, peripheral(-55));
    held = mergeMetadata(held, central);
    held = mergeMetadata(held, peripheral(-80));
    expect(decodeMetadata(held)).toMatchObject({ role: ROLE_BOTH, rs: -55 });
    expect(held.length).toBe(central.length);
    // one role only: the role stays, and without a phone's figure rs stays 127
    expect(decodeMetadata(mergeMetadata(central, central))).toMatchObject({ role: ROLE_CENTRAL, rs: 127 });
    expect(decodeMetadata(mergeMetadata(peripheral(-60), peripheral(-65)))).toMatchObject({ role: ROLE_PERIPHERAL, rs: -60 });
    // and through the aggregator: a central exchange, then a peripheral one, is one encounter in both roles
    const state = createAggregator(aggregatorOptions());
    const tempId = Buffer.alloc(61, 3);
    const out: ClosedEncounter[] = [];
    observe(state, { protocol: PROTOCOL_BLUETRACE, tempId, metadata: central, rssi: -66, address: '', time: 1000, clockSynced: true }, out);
    observe(state, { protocol: PROTOCOL_BLUETRACE, tempId, metadata: peripheral(-58), rssi: -64, address: '', time: 9000, clockSynced: true }, out);
    closeAll(state, out);
    expect(out).toHaveLength(1);
    expect(out[0].count).toBe(2);
    expect(decodeMetadata(out[0].metadata)).toEqual({ role: ROLE_BOTH, rs: -58, org: 'ID_PL', model: 'Galaxy A12' });
  });

  it('travel on the wire as protocol 1 beside EN encounters, metadata after a one-byte length', () => {
    const header = { kind: 'batch' as const, id: ulid(), gateway: 'gw', venue: 'v', life: ulid(), seq: 1, createdAt: 1_795_000_000_000 };
    const base = { firstSeen: 1_795_000_000_000, lastSeen: 1_795_000_090_000, count: 2, rssiMin: -70, rssiMax: -60, rssiSum: -130, rssiCount: 2, bucketMs: [0, 20_000, 0, 0], clockSynced: true };
    const bt = (id: number, model: string) => toWire({
      ...base, id, protocol: PROTOCOL_BLUETRACE, tempId: tempIdBytes(encryptTempId(key, newUid(), 1, 901))!,
      metadata: encodeMetadata({ role: ROLE_PERIPHERAL, rs: -58, org: 'ID_PL', model }),
    });
    const en = toWire({ ...base, id: 2, protocol: PROTOCOL_EN, tempId: randomBytes(16), metadata: randomBytes(4) });
    const encounters = [bt(1, 'Pixel 7'), en, bt(3, 'SM-A515F'), bt(4, '')];
    const decoded = decodeBatch(encodeBatch(header, encounters));
    expect(decoded.encounters).toEqual(encounters);
    expect(decodeMetadata(decoded.encounters[2].metadata)?.model).toBe('SM-A515F');
    // metadata longer than the protocol allows is refused by the encoder
    expect(() => encodeBatch(header, [{ ...encounters[0], metadata: Buffer.alloc(MAX_METADATA_BYTES + 1) }])).toThrow(/metadata/);
  });

  it('refuses a batch whose BlueTrace metadata length runs past the column', async () => {
    const { deflateRawSync } = await import('node:zlib');
    const { cborEncode, contentHash } = await import('../../core/wire/index.js');
    const enc = deflateRawSync(cborEncode([[1], Buffer.from([1]), Buffer.concat([Buffer.alloc(61), Buffer.from([50]), Buffer.alloc(4)]), [10], [0], [1], [-60], [0], [0], 0, [], [0]]));
    const msg = cborEncode({ v: 3, kind: 'batch', id: ulid(), gw: 'gw', venue: 'v', life: ulid(), seq: 1, created: 1, n: 1, enc, hash: contentHash(enc) });
    expect(() => decodeBatch(msg)).toThrow(WireFormatError);
    expect(() => decodeBatch(msg)).toThrow(/enc.tempIds/);
  });
});
