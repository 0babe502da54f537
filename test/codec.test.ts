import { encode as cborEncode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ulid } from 'ulid';
import {
  ackSchema,
  BatchHeader,
  decodeBatch,
  EncounterRecord,
  encodeBatch,
  parseMessage,
  requestSchema,
  toWire,
} from '../daemon/uplink/index.js';

const header: BatchHeader = { kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: 7, createdAt: 1_795_000_000_000 };

function record(i: number, rand: () => number): EncounterRecord {
  const tempId = Buffer.alloc(16);
  for (let k = 0; k < 16; k++) tempId[k] = Math.floor(rand() * 256);
  const metadata = Buffer.from([1, 2, 3, 4].map(() => Math.floor(rand() * 256)));
  const firstSeen = 1_795_000_000_000 + Math.floor(rand() * 3_600_000);
  const count = 50 + Math.floor(rand() * 2000);
  const rssiMax = -45 - Math.floor(rand() * 20);
  const rssiMin = rssiMax - Math.floor(rand() * 30);
  return {
    id: 1000 + i, protocol: 0, tempId, metadata, firstSeen, lastSeen: firstSeen + Math.floor(rand() * 600_000),
    count, rssiMin, rssiMax, rssiSum: Math.round(((rssiMin + rssiMax) / 2) * count), rssiCount: count, clockSynced: i % 7 !== 0,
    bucketMs: [rand() * 300_000, rand() * 300_000, rand() * 100_000, 0].map(Math.round),
  };
}

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

describe('batch wire format v1', () => {
  it('round-trips encounters at wire precision', () => {
    const rand = seeded(3);
    const wire = Array.from({ length: 100 }, (_, i) => toWire(record(i, rand)));
    const decoded = decodeBatch(encodeBatch(header, wire));
    expect(decoded).toMatchObject({ ...header });
    expect(decoded.encounters).toEqual(wire);
    // the clock flag survives both ways
    expect(decoded.encounters.filter((e) => !e.clockSynced).map((e) => e.id)).toEqual(wire.filter((e) => !e.clockSynced).map((e) => e.id));
    expect(decoded.encounters.some((e) => !e.clockSynced)).toBe(true);
  });

  it('rounds times outward to whole seconds and the mean to 0.1 dBm', () => {
    const w = toWire({ id: 1, protocol: 0, tempId: Buffer.alloc(16), metadata: Buffer.alloc(4), firstSeen: 10_999, lastSeen: 12_001, count: 3, rssiMin: -70, rssiMax: -60, rssiSum: -196, rssiCount: 3, bucketMs: [1499, 1500, 0, 0], clockSynced: true });
    expect(w).toMatchObject({ firstSeen: 10_000, lastSeen: 13_000, rssiMean: -65.3, attenuationS: [1, 2, 0, 0] });
  });

  it('carries an encounter whose RSSI was never available (HCI 127) as 127', () => {
    const w = toWire({ id: 1, protocol: 0, tempId: Buffer.alloc(16), metadata: Buffer.alloc(4), firstSeen: 0, lastSeen: 5000, count: 4, rssiMin: 127, rssiMax: 127, rssiSum: 0, rssiCount: 0, bucketMs: [0, 0, 0, 0], clockSynced: false });
    expect(w).toMatchObject({ count: 4, rssiMin: 127, rssiMax: 127, rssiMean: 127 });
    expect(decodeBatch(encodeBatch(header, [w])).encounters[0]).toEqual(w);
  });

  it('spends under 40 bytes per encounter, the 20 bytes of RPI+AEM included', () => {
    const rand = seeded(11);
    const wire = Array.from({ length: 256 }, (_, i) => toWire(record(i, rand)));
    const bytes = encodeBatch(header, wire).length;
    expect(bytes / 256).toBeLessThan(40);
    expect(bytes / 256).toBeGreaterThan(20);
  });

  it('rejects tampering, truncation and garbage with the field named', () => {
    const wire = [toWire(record(1, seeded(5)))];
    const good = encodeBatch(header, wire);
    expect(() => decodeBatch(Buffer.from('not cbor at all \xff'))).toThrow(/^payload: /);
    expect(() => decodeBatch(Buffer.from(cborEncode([1, 2, 3])))).toThrow(/payload: expected a CBOR map/);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 40] ^= 0xff;
    expect(() => decodeBatch(flipped)).toThrow(/hash|enc|payload/);
    expect(() => decodeBatch(good.subarray(0, good.length - 5))).toThrow(/payload|hash|enc/);
    const msg = (over: Record<string, unknown>) => Buffer.from(cborEncode({ v: 1, kind: 'batch', id: header.id, gw: 'g', venue: 'v', life: header.life, seq: 1, created: 1, n: 0, enc: Buffer.alloc(0), hash: Buffer.alloc(32), ...over }));
    expect(() => decodeBatch(msg({ v: 2 }))).toThrow(/^v: expected schema version 1/);
    expect(() => decodeBatch(msg({ id: 'nope' }))).toThrow(/^id: expected a ULID/);
    expect(() => decodeBatch(msg({ life: undefined }))).toThrow(/^life: expected a ULID/);
    expect(() => decodeBatch(msg({ life: 7 }))).toThrow(/^life: expected a ULID/);
    expect(() => decodeBatch(msg({ seq: -1 }))).toThrow(/^seq: /);
    expect(() => decodeBatch(msg({ hash: Buffer.alloc(3) }))).toThrow(/^hash: expected a 32-byte/);
    expect(() => decodeBatch(msg({}))).toThrow(/^hash: does not match/);
  });

  it('never throws anything but a WireFormatError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), (bytes) => {
        try {
          decodeBatch(Buffer.from(bytes));
        } catch (err) {
          expect((err as Error).name).toBe('WireFormatError');
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('acks and requests', () => {
  it('accepts JSON and CBOR acks, and names the problem otherwise', () => {
    const id = ulid();
    expect(parseMessage(Buffer.from(JSON.stringify({ v: 1, acks: [id] })), ackSchema, 1000).acks).toEqual([id]);
    expect(parseMessage(Buffer.from(cborEncode({ v: 1, acks: [id] })), ackSchema, 1000).acks).toEqual([id]);
    expect(() => parseMessage(Buffer.from('{"v":1,"acks":"x"}'), ackSchema, 1000)).toThrow(/^acks: /);
    expect(() => parseMessage(Buffer.from('{"v":1,"acks":["abc"]}'), ackSchema, 1000)).toThrow(/acks.0: must be a ULID/);
    expect(() => parseMessage(Buffer.from('{oops'), ackSchema, 1000)).toThrow(/neither JSON nor CBOR/);
    expect(() => parseMessage(Buffer.alloc(2000, 0x20), ackSchema, 1000)).toThrow(/more than the 1000 allowed/);
  });

  it('parses pull requests with ISO or millisecond times', () => {
    const r = parseMessage(Buffer.from('{"v":1,"op":"pull","from":"2026-11-22T10:00:00Z","to":1795400000000}'), requestSchema, 1000);
    expect(r).toEqual({ v: 1, op: 'pull', from: Date.parse('2026-11-22T10:00:00Z'), to: 1795400000000 });
    expect(() => parseMessage(Buffer.from('{"v":1,"op":"pull","from":5,"to":5}'), requestSchema, 1000)).toThrow(/^to: must be after from/);
    expect(() => parseMessage(Buffer.from('{"v":1,"op":"pull","from":"yesterday","to":5}'), requestSchema, 1000)).toThrow(/^from: /);
    expect(() => parseMessage(Buffer.from('{"v":1,"op":"reboot"}'), requestSchema, 1000)).toThrow(/^op: /);
    // before 1970 is refused as an ISO string, as it is as a negative number
    expect(() => parseMessage(Buffer.from('{"v":1,"op":"pull","from":"1969-12-31T00:00:00Z","to":5}'), requestSchema, 1000)).toThrow(/^from: must not be before 1970/);
    expect(() => parseMessage(Buffer.from('{"v":1,"op":"pull","from":-5,"to":5}'), requestSchema, 1000)).toThrow(/^from: /);
  });
});
