import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { encode as cborEncode } from 'cbor-x';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ulid } from 'ulid';
import { type Encounter, meanTenths, toWire } from '../../core/encounters/index.js';
import { ackSchema, BatchHeader, decodeBatch, encodeBatch, parseMessage, requestSchema, signedBytes } from '../../core/wire/index.js';

const header: BatchHeader = { kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: 7, createdAt: 1_795_000_000_000 };

function record(i: number, rand: () => number): Encounter & { id: number } {
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

describe('batch wire format, protocol 3', () => {
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

  it('rounds times outward to whole seconds, the mean to 0.1 dBm (halves up) and buckets cumulatively', () => {
    const base = { id: 1, protocol: 0, tempId: Buffer.alloc(16), metadata: Buffer.alloc(4), count: 3, rssiMin: -70, rssiMax: -60, clockSynced: true };
    const w = toWire({ ...base, firstSeen: 10_999, lastSeen: 12_001, rssiSum: -196, rssiCount: 3, bucketMs: [1499, 1500, 0, 0] });
    // buckets: cumulative 1.499 s → 1, then 2.999 s → 3, so the second bucket gets 2
    expect(w).toMatchObject({ firstSeen: 10_000, lastSeen: 13_000, rssiMean: -65.3, attenuationS: [1, 2, 0, 0] });
    // halves of a tenth round toward +∞, in exact integer arithmetic (-65.05 → -65.0, 65.05 → 65.1)
    expect(meanTenths(-1301, 20)).toBe(-650);
    expect(meanTenths(1301, 20)).toBe(651);
    expect(meanTenths(-1303, 20)).toBe(-651); // -65.15 → -65.1
    expect(toWire({ ...base, firstSeen: 0, lastSeen: 0, rssiSum: -1301, rssiCount: 20, bucketMs: [0, 0, 0, 0] }).rssiMean).toBe(-65);
    // four half seconds: rounded each they would be 4 s, more than the 2 s they span
    const halves = toWire({ ...base, firstSeen: 1000, lastSeen: 3000, rssiSum: -196, rssiCount: 3, bucketMs: [500, 500, 500, 500] });
    expect(halves.attenuationS).toEqual([1, 0, 1, 0]);
  });

  it('never credits buckets with more than the duration: the residual is 0–2 s when every gap was credited', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2e12 }), fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 0, max: 3 }), (first, gaps, slots) => {
        // each gap after the first sighting goes to one of four buckets, as the aggregator credits them
        const bucketMs = [0, 0, 0, 0];
        gaps.forEach((g, i) => (bucketMs[(i + slots) % 4] += g));
        const span = gaps.reduce((a, b) => a + b, 0);
        const w = toWire({ id: 1, protocol: 0, tempId: Buffer.alloc(16), metadata: Buffer.alloc(4), firstSeen: first, lastSeen: first + span, count: gaps.length + 1, rssiMin: -70, rssiMax: -60, rssiSum: -65 * (gaps.length + 1), rssiCount: gaps.length + 1, bucketMs, clockSynced: true });
        const residual = (w.lastSeen - w.firstSeen) / 1000 - w.attenuationS.reduce((a, b) => a + b, 0);
        expect(residual).toBeGreaterThanOrEqual(0);
        expect(residual).toBeLessThanOrEqual(2);
        // and the sum is the credited time rounded once, to the nearest second, halves up
        expect(w.attenuationS.reduce((a, b) => a + b, 0)).toBe(Math.floor((span + 500) / 1000));
      }),
      { numRuns: 2000 },
    );
  });

  it('signs exact bytes any language rebuilds without a CBOR encoder', () => {
    const h: BatchHeader = { kind: 'pull', id: '01JDZ8Q4M7W6T9N3V2X5Y8Z0AB', gateway: 'gw-01', venue: 'mall-01', life: '01JDZ8Q4M7W6T9N3V2X5Y8Z0AC', seq: 0, createdAt: 1_795_000_000_123, part: 0, last: false };
    const hash = Buffer.alloc(32, 0xab);
    const expected = Buffer.concat([
      Buffer.from('vgw-batch-v2'), Buffer.from([2]),
      Buffer.from([26]), Buffer.from(h.id), Buffer.from([5]), Buffer.from('gw-01'), Buffer.from([7]), Buffer.from('mall-01'), Buffer.from([26]), Buffer.from(h.life),
      Buffer.from('0000000000000000', 'hex'), Buffer.from('000001a1ee565e7b', 'hex'), // seq, created = 1795000000123
      Buffer.from('0000000000000000', 'hex'), Buffer.from([0]), // part 0 and last false are values, not "absent"
      hash,
    ]);
    expect(signedBytes(h, hash).toString('hex')).toBe(expected.toString('hex'));
    const outbox = signedBytes({ ...h, kind: 'batch', seq: 7, part: undefined, last: undefined }, hash);
    expect(outbox.subarray(12, 13)).toEqual(Buffer.from([1]));
    expect(outbox.subarray(outbox.length - 32 - 9, outbox.length - 32).toString('hex')).toBe('ffffffffffffffffff');
  });

  it('writes created (unix ms, above 2^32) as a CBOR unsigned integer, never a float', () => {
    const payload = encodeBatch(header, []);
    // "created" as a text key (0x67 + 7 bytes) then major type 0 with an 8-byte argument (0x1b)
    const at = payload.indexOf(Buffer.from('67637265617465641b', 'hex'));
    expect(at).toBeGreaterThan(0);
    expect(payload.readBigUInt64BE(at + 9)).toBe(BigInt(header.createdAt));
    expect(payload.includes(Buffer.from([0xfb]))).toBe(false);
    expect(decodeBatch(payload).createdAt).toBe(header.createdAt);
  });

  it('ignores a header key it does not know: it decodes, and the signed bytes are those of the known fields (protocol.md, "Keys")', async () => {
    const payload = encodeBatch(header, [], () => Buffer.alloc(64, 7));
    const { decode, encode } = await import('cbor-x');
    const withExtra = Buffer.from(encode({ ...(decode(payload) as Record<string, unknown>), note: 'added by a later revision', created: BigInt(header.createdAt) }));
    const a = decodeBatch(payload);
    const b = decodeBatch(withExtra);
    expect(b).toEqual(a);
    expect('note' in b).toBe(false);
    expect(signedBytes(b, b.hash)).toEqual(signedBytes(a, a.hash));
  });

  it('carries part and last on pull parts and on nothing else', () => {
    const pullHeader: BatchHeader = { ...header, kind: 'pull', seq: 0, part: 0, last: false };
    expect(decodeBatch(encodeBatch(pullHeader, []))).toMatchObject({ part: 0, last: false });
    expect(() => encodeBatch({ ...header, part: 1, last: true }, [])).toThrow(/pull parts carry part and last/);
    expect(() => encodeBatch({ ...pullHeader, last: undefined }, [])).toThrow(/pull parts carry part and last/);
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
    const msg = (over: Record<string, unknown>) => Buffer.from(cborEncode({ v: 3, kind: 'batch', id: header.id, gw: 'g', venue: 'v', life: header.life, seq: 1, created: 1, n: 0, enc: Buffer.alloc(0), hash: Buffer.alloc(32), ...over }));
    expect(() => decodeBatch(msg({ v: 4 }))).toThrow(/^v: expected protocol version 3/);
    expect(() => decodeBatch(msg({ v: 1 }))).toThrow(/^v: protocol version 1 is retired .*update the gateway to protocol 3, topic prefix vgw\/v3/);
    expect(() => decodeBatch(msg({ v: 2 }))).toThrow(/^v: protocol version 2 is retired \(a gateway took acks and requests from anyone the broker let publish\): update the gateway to protocol 3/);
    expect(() => decodeBatch(msg({ gw: 'a/b' }))).toThrow(/^gw: expected a gateway id/);
    const emptyHash = createHash('sha256').digest();
    expect(() => decodeBatch(msg({ hash: emptyHash, part: 0 }))).toThrow(/^part: expected no part on an outbox batch/);
    expect(() => decodeBatch(msg({ hash: emptyHash, kind: 'pull', part: 0 }))).toThrow(/^last: expected true or false on every pull part/);
    expect(() => decodeBatch(msg({ id: 'nope' }))).toThrow(/^id: expected a ULID/);
    expect(() => decodeBatch(msg({ life: undefined }))).toThrow(/^life: expected a ULID/);
    expect(() => decodeBatch(msg({ life: 7 }))).toThrow(/^life: expected a ULID/);
    expect(() => decodeBatch(msg({ seq: -1 }))).toThrow(/^seq: /);
    expect(() => decodeBatch(msg({ hash: Buffer.alloc(3) }))).toThrow(/^hash: expected a 32-byte/);
    expect(() => decodeBatch(msg({}))).toThrow(/^hash: does not match/);
  });

  it('never throws anything but a WireFormatError on a sound header over arbitrary columns', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.array(fc.integer({ min: -300, max: 300 }), { maxLength: 6 }), fc.uint8Array({ maxLength: 30 }), fc.integer({ min: -2, max: 20 }), fc.double(), fc.string()), { maxLength: 13 }), fc.integer({ min: 0, max: 5 }), (columns, n) => {
        const enc = deflateRawSync(cborEncode(columns));
        const payload = cborEncode({ v: 3, kind: 'batch', id: header.id, gw: 'g', venue: 'v', life: header.life, seq: 1, created: 1, n, enc, hash: createHash('sha256').update(enc).digest() });
        try {
          decodeBatch(payload);
        } catch (err) {
          expect((err as Error).name).toBe('WireFormatError');
          expect((err as Error).message).toMatch(/^(enc(\.[a-zA-Z]+)?): /);
        }
      }),
      { numRuns: 3000 },
    );
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
    expect(parseMessage(Buffer.from(JSON.stringify({ v: 3, acks: [id] })), ackSchema, 1000).acks).toEqual([id]);
    expect(parseMessage(Buffer.from(cborEncode({ v: 3, acks: [id] })), ackSchema, 1000).acks).toEqual([id]);
    expect(() => parseMessage(Buffer.from('{"v":3,"acks":"x"}'), ackSchema, 1000)).toThrow(/^acks: /);
    expect(() => parseMessage(Buffer.from('{"v":3,"acks":["abc"]}'), ackSchema, 1000)).toThrow(/acks.0: must be a ULID/);
    expect(() => parseMessage(Buffer.from('{oops'), ackSchema, 1000)).toThrow(/neither JSON nor CBOR/);
    expect(() => parseMessage(Buffer.alloc(2000, 0x20), ackSchema, 1000)).toThrow(/more than the 1000 allowed/);
  });

  it('parses pull requests with ISO or millisecond times', () => {
    const r = parseMessage(Buffer.from('{"v":3,"op":"pull","from":"2026-11-22T10:00:00Z","to":1795400000000}'), requestSchema, 1000);
    expect(r).toEqual({ v: 3, op: 'pull', from: Date.parse('2026-11-22T10:00:00Z'), to: 1795400000000 });
    expect(() => parseMessage(Buffer.from('{"v":3,"op":"pull","from":5,"to":5}'), requestSchema, 1000)).toThrow(/^to: must be after from/);
    expect(() => parseMessage(Buffer.from('{"v":3,"op":"pull","from":"yesterday","to":5}'), requestSchema, 1000)).toThrow(/^from: /);
    expect(() => parseMessage(Buffer.from('{"v":3,"op":"reboot"}'), requestSchema, 1000)).toThrow(/^op: /);
    // before 1970 is refused as an ISO string, as it is as a negative number
    expect(() => parseMessage(Buffer.from('{"v":3,"op":"pull","from":"1969-12-31T00:00:00Z","to":5}'), requestSchema, 1000)).toThrow(/^from: must not be before 1970/);
    expect(() => parseMessage(Buffer.from('{"v":3,"op":"pull","from":-5,"to":5}'), requestSchema, 1000)).toThrow(/^from: /);
  });
});
