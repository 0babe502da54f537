// Wire format of encounter batches, protocol version 3 (docs/protocol.md, docs/protocol.cddl); a
// batch's bytes and signature are as in protocol 2, only `v` changed.
// A batch is a CBOR map whose `enc` field holds the encounters column by column, deflated: the
// 20 bytes of RPI+AEM per encounter stay as they are, and the small numbers around them nearly
// vanish. Every number on the wire is a CBOR integer, never a float.
import { createHash } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { Decoder, Encoder } from 'cbor-x';
import { z } from 'zod';
import { PROTOCOL_SIZES } from '../protocols/index.js';
import { type WireEncounter } from '../encounters/index.js';
import { NAME_PATTERN as NAME, ULID_PATTERN as ULID } from '../identifiers/index.js';

/** The protocol version: in the topic prefix (`vgw/v3`) and in every payload's `v`. */
export const WIRE_SCHEMA_VERSION = 3;
/** Bit 0 of an encounter's flags: its times came from a clock not yet synchronised. */
export const FLAG_CLOCK_UNSYNCED = 1;
/** Refuse to inflate past this: a few bytes of deflate can claim gigabytes. */
const MAX_INFLATED_BYTES = 16 * 1024 * 1024;
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The life of encounters stored before lives existed (schema 1): all zeros. */
export const LEGACY_LIFE = '00000000000000000000000000';

export type BatchKind = 'batch' | 'pull';

export interface BatchHeader {
  kind: BatchKind;
  id: string;
  gateway: string;
  venue: string;
  /**
   * The gateway's life: a ULID the store draws at every start (and for every new database).
   * Encounter ids and `seq` are unique within (gateway, life), so a database that was lost,
   * rolled back or restored can never make an id mean two encounters.
   */
  life: string;
  /** Per-(gateway, life) sequence of outbox batches, from 1; 0 for pull responses. */
  seq: number;
  createdAt: number;
  /** Pull responses come in parts; `last` marks the final one. */
  part?: number;
  last?: boolean;
}

export interface Batch extends BatchHeader {
  encounters: WireEncounter[];
  hash: Buffer;
  /** Ed25519 signature of `signedBytes` by the gateway's key; absent on unsigned batches. */
  sig?: Buffer;
}

/** Signs the bytes `signedBytes` returns; the gateway's key lives behind it. */
export type BatchSigner = (data: Buffer) => Buffer;

// Named for protocol 2, whose batches protocol 3 keeps byte for byte.
const SIGNATURE_DOMAIN = Buffer.from('vgw-batch-v2', 'ascii');
const KIND_CODES: Record<BatchKind, number> = { batch: 1, pull: 2 };
const NO_PART = 0xffff_ffff_ffff_ffffn;
const NO_LAST = 0xff;

/**
 * What a batch signature covers, as bytes any language rebuilds with no CBOR encoder (protocol.md,
 * "Signature"): the domain, the kind as one byte, each text field as its length (one byte) and
 * UTF-8, seq and created as unsigned 64-bit big-endian, part (all ones when absent) and last
 * (0xFF when absent), then the content hash. Nothing depends on how a library writes numbers.
 */
export function signedBytes(h: BatchHeader, hash: Uint8Array): Buffer {
  const texts = [h.id, h.gateway, h.venue, h.life].map((t) => Buffer.from(t, 'utf8'));
  const numbers = Buffer.alloc(8 + 8 + 8 + 1);
  numbers.writeBigUInt64BE(BigInt(h.seq), 0);
  numbers.writeBigUInt64BE(BigInt(h.createdAt), 8);
  numbers.writeBigUInt64BE(h.part === undefined ? NO_PART : BigInt(h.part), 16);
  numbers[24] = h.last === undefined ? NO_LAST : h.last ? 1 : 0;
  return Buffer.concat([
    SIGNATURE_DOMAIN,
    Buffer.from([KIND_CODES[h.kind]]),
    ...texts.flatMap((t) => [Buffer.from([t.length]), t]),
    numbers,
    Buffer.from(hash),
  ]);
}

/** Preferred serialization (RFC 8949 §4.1): cbor-x otherwise gives every map a 2-byte length. */
const encoder = new Encoder({ useRecords: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);
export const cborEncode = (value: unknown): Buffer => encoder.encode(value);

/** cbor-x writes integers of 2^32 and more as float64; the protocol has no floats, so those go as uint64. */
export function cborUint(n: number): number | bigint {
  return n < 0x1_0000_0000 ? n : BigInt(n);
}

export class WireFormatError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'WireFormatError';
  }
}

/**
 * Column layout of the deflated `enc` field; positions are part of the protocol. Each column
 * is coded so its numbers stay small: encounters arrive in closing order, so last-seen times
 * are delta-coded; the last attenuation bucket is sent as the seconds no bucket was credited
 * with (0–2 unless gaps went uncredited), the mean RSSI relative to the midpoint of min and max.
 */
function encodeColumns(encs: WireEncounter[]): Buffer {
  const n = encs.length;
  const buckets = n === 0 ? 0 : encs[0].attenuationS.length;
  const ids: number[] = [];
  const protocols = Buffer.alloc(n);
  const tempIds: Buffer[] = [];
  const ends: number[] = [];
  const durations: number[] = [];
  const counts: number[] = [];
  const rssiMax: number[] = [];
  const rssiSpread: number[] = [];
  const rssiMeanVsMid: number[] = [];
  const attenuation: number[] = [];
  const flags: number[] = [];
  let prevId = 0;
  let prevEnd = 0;
  encs.forEach((e, i) => {
    if (e.attenuationS.length !== buckets) throw new Error('encounters of one batch must share bucket count');
    ids.push(e.id - prevId);
    prevId = e.id;
    protocols[i] = e.protocol;
    tempIds.push(e.tempId);
    const metadataSize = PROTOCOL_SIZES[e.protocol]?.metadata;
    if (typeof metadataSize === 'object') {
      if (e.metadata.length > metadataSize.max) throw new Error(`encounter ${e.id}: metadata longer than protocol ${e.protocol} allows`);
      tempIds.push(Buffer.from([e.metadata.length]));
    }
    tempIds.push(e.metadata);
    const end = e.lastSeen / 1000;
    const duration = (e.lastSeen - e.firstSeen) / 1000;
    ends.push(end - prevEnd);
    prevEnd = end;
    durations.push(duration);
    counts.push(e.count);
    rssiMax.push(e.rssiMax);
    rssiSpread.push(e.rssiMax - e.rssiMin);
    rssiMeanVsMid.push(Math.round(e.rssiMean * 10) - 5 * (e.rssiMax + e.rssiMin));
    let sum = 0;
    for (let b = 0; b < buckets - 1; b++) {
      attenuation.push(e.attenuationS[b]);
      sum += e.attenuationS[b];
    }
    if (buckets > 0) attenuation.push(duration - sum - e.attenuationS[buckets - 1]);
    flags.push(e.clockSynced ? 0 : FLAG_CLOCK_UNSYNCED);
  });
  const columns = [
    ids, protocols, Buffer.concat(tempIds), ends, durations, counts,
    rssiMax, rssiSpread, rssiMeanVsMid, buckets, attenuation, flags,
  ];
  return deflateRawSync(cborEncode(columns), { level: 9 });
}

export function encodeBatch(header: BatchHeader, encounters: WireEncounter[], signer?: BatchSigner): Buffer {
  const enc = encodeColumns(encounters);
  const hash = contentHash(enc);
  const msg: Record<string, unknown> = {
    v: WIRE_SCHEMA_VERSION,
    kind: header.kind,
    id: header.id,
    gw: header.gateway,
    venue: header.venue,
    life: header.life,
    seq: cborUint(header.seq),
    created: cborUint(header.createdAt),
    n: encounters.length,
    enc,
    hash,
  };
  if ((header.kind === 'pull') !== (header.part !== undefined && header.last !== undefined)) {
    throw new Error('pull parts carry part and last; outbox batches carry neither');
  }
  if (header.part !== undefined) msg.part = header.part;
  if (header.last !== undefined) msg.last = header.last;
  if (signer) msg.sig = signer(signedBytes(header, hash));
  return Buffer.from(cborEncode(msg));
}

export function contentHash(enc: Uint8Array): Buffer {
  return createHash('sha256').update(enc).digest();
}

/** uint64 values (`created`) decode as numbers; an unsafe one fails the integer checks below. */
const decoder = new Decoder({ mapsAsObjects: true, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0]);
export const cborDecode = (bytes: Uint8Array): unknown => decoder.decode(bytes);

function field(ok: boolean, name: string, expected: string): void {
  if (!ok) throw new WireFormatError(name, `expected ${expected}`);
}

// The shapes of a batch and of its columns; each error says what was expected of the field.
const uint = (expected: string) => {
  const error = `expected ${expected}`;
  return z.number({ error }).int({ error }).nonnegative({ error }).max(Number.MAX_SAFE_INTEGER, { error });
};
const bytes = (expected: string, length?: number) =>
  z.instanceof(Uint8Array, { error: `expected ${expected}` }).refine((b) => length === undefined || b.length === length, { error: `expected ${expected}` });
const text = (pattern: RegExp, expected: string) => z.string({ error: `expected ${expected}` }).regex(pattern, { error: `expected ${expected}` });

const batchSchema = z.object({
  v: z.literal(WIRE_SCHEMA_VERSION, { error: `expected protocol version ${WIRE_SCHEMA_VERSION}` }),
  kind: z.enum(['batch', 'pull'], { error: 'expected "batch" or "pull"' }),
  id: text(ULID, 'a ULID'),
  gw: text(NAME, 'a gateway id (1–64 letters, digits, _ . -)'),
  venue: text(NAME, 'a venue id (1–64 letters, digits, _ . -)'),
  life: text(ULID, 'a ULID (the gateway life the encounter ids belong to)'),
  seq: uint('an unsigned integer'),
  created: uint('unix milliseconds'),
  n: uint('an encounter count'),
  enc: bytes('a byte string'),
  hash: bytes('a 32-byte SHA-256', 32),
  part: uint('an unsigned integer').optional(),
  last: z.boolean({ error: 'expected a boolean' }).optional(),
  sig: bytes('a 64-byte Ed25519 signature', 64).optional(),
});

/**
 * An integer column: one predicate over the whole array, since a zod schema per element made
 * decoding ten times slower (a collector decodes every batch of a fleet). Lengths depend on n
 * and are checked after, so the schema is built once.
 */
const ints = (expected: string, min = -Number.MAX_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) =>
  z.custom<number[]>((v) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= min && x <= max), { error: `expected ${expected}` });

/** The 12 columns `enc` inflates to; the names are those of protocol.md. */
const columnsSchema = z.tuple([
  ints('integers'),
  bytes('a byte string of protocol numbers'),
  bytes('a byte string'),
  ints('integers'),
  ints('unsigned integers', 0),
  ints('unsigned integers', 0),
  ints('dBm values', -127, 127),
  ints('unsigned integers', 0),
  ints('integers'),
  uint('a bucket count up to 16').max(16, { error: 'expected a bucket count up to 16' }),
  ints('integers'),
  ints('unsigned integers', 0),
]);
const COLUMN_NAMES = ['ids', 'protocols', 'tempIds', 'ends', 'durations', 'counts', 'rssiMax', 'rssiSpread', 'rssiMeanVsMid', 'buckets', 'attenuation', 'flags'];

/** Checks `value` against `schema`; the first problem becomes a WireFormatError naming its field. */
function check<T>(schema: z.ZodType<T>, value: unknown, fieldName: (path: PropertyKey[]) => string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new WireFormatError(fieldName(issue.path), issue.message);
}

/** Decodes and checks a batch; every problem is a WireFormatError naming the field. */
export function decodeBatch(payload: Uint8Array): Batch {
  if (payload.length > MAX_MESSAGE_BYTES) throw new WireFormatError('payload', `larger than ${MAX_MESSAGE_BYTES} bytes`);
  let msg: unknown;
  try {
    msg = cborDecode(payload);
  } catch {
    throw new WireFormatError('payload', 'not CBOR');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new WireFormatError('payload', 'expected a CBOR map');
  const v = (msg as { v?: unknown }).v;
  if (v === 1) {
    throw new WireFormatError('v', 'protocol version 1 is retired (its signature covered a CBOR re-encoding of the header, which libraries write differently): update the gateway to protocol 3, topic prefix vgw/v3');
  }
  if (v === 2) {
    throw new WireFormatError('v', "protocol version 2 is retired (a gateway took acks and requests from anyone the broker let publish): update the gateway to protocol 3, topic prefix vgw/v3");
  }
  const m = check(batchSchema, msg, (path) => String(path[0] ?? 'payload'));
  if (!contentHash(m.enc).equals(m.hash)) throw new WireFormatError('hash', 'does not match the content of enc (corrupted or altered)');
  if (m.kind === 'pull') {
    field(m.part !== undefined, 'part', 'a part number on every pull part');
    field(m.last !== undefined, 'last', 'true or false on every pull part');
  } else {
    field(m.part === undefined, 'part', 'no part on an outbox batch (only pull parts carry one)');
    field(m.last === undefined, 'last', 'no last on an outbox batch (only pull parts carry one)');
  }
  return {
    kind: m.kind, id: m.id, gateway: m.gw, venue: m.venue, life: m.life, seq: m.seq, createdAt: m.created, part: m.part, last: m.last,
    encounters: decodeColumns(m.enc, m.n), hash: Buffer.from(m.hash), ...(m.sig ? { sig: Buffer.from(m.sig) } : {}),
  };
}

function decodeColumns(enc: Uint8Array, n: number): WireEncounter[] {
  let cols: unknown;
  try {
    cols = cborDecode(inflateRawSync(enc, { maxOutputLength: MAX_INFLATED_BYTES }));
  } catch {
    throw new WireFormatError('enc', 'not deflated CBOR columns');
  }
  if (!Array.isArray(cols) || cols.length !== 12) throw new WireFormatError('enc', 'expected 12 columns');
  const [ids, protocols, tempIds, ends, durations, counts, rssiMax, rssiSpread, meanVsMid, b, attenuation, flags] = check(
    columnsSchema, cols, (path) => `enc.${COLUMN_NAMES[path[0] as number] ?? ''}`,
  );
  const perEncounter = { ids, protocols, ends, durations, counts, rssiMax, rssiSpread, rssiMeanVsMid: meanVsMid, flags };
  for (const [name, column] of Object.entries(perEncounter)) field(column.length === n, `enc.${name}`, `${n} entries, one per encounter`);
  field(attenuation.length === n * b, 'enc.attenuation', `${n}×buckets integers`);
  const out: WireEncounter[] = [];
  let offset = 0;
  let id = 0;
  let end = 0;
  for (let i = 0; i < n; i++) {
    const protocol = protocols[i];
    const sizes = PROTOCOL_SIZES[protocol];
    if (!sizes) throw new WireFormatError('enc.protocols', `unknown protocol ${protocol}`);
    const variable = typeof sizes.metadata === 'object' ? sizes.metadata : null;
    const metaAt = offset + sizes.tempId + (variable ? 1 : 0);
    if (metaAt > tempIds.length) throw new WireFormatError('enc.tempIds', 'too short for the protocols listed');
    const metaLength = variable ? tempIds[metaAt - 1] : (sizes.metadata as number);
    if (variable && metaLength > variable.max) {
      throw new WireFormatError('enc.tempIds', `encounter ${i}: metadata of ${metaLength} bytes, more than protocol ${protocol} allows (${variable.max})`);
    }
    if (metaAt + metaLength > tempIds.length) throw new WireFormatError('enc.tempIds', 'too short for the protocols listed');
    id += ids[i];
    end += ends[i];
    const duration = durations[i];
    const max = rssiMax[i];
    const rssiMin = max - rssiSpread[i];
    const att = attenuation.slice(i * b, (i + 1) * b);
    if (b > 0) att[b - 1] = duration - att.slice(0, b - 1).reduce((x, y) => x + y, 0) - att[b - 1];
    if (end - duration < 0 || att.some((x) => x < 0)) throw new WireFormatError('enc', `encounter ${i} decodes to negative times`);
    out.push({
      id,
      protocol,
      tempId: Buffer.from(tempIds.subarray(offset, offset + sizes.tempId)),
      metadata: Buffer.from(tempIds.subarray(metaAt, metaAt + metaLength)),
      firstSeen: (end - duration) * 1000,
      lastSeen: end * 1000,
      count: counts[i],
      rssiMin,
      rssiMax: max,
      rssiMean: (meanVsMid[i] + 5 * (max + rssiMin)) / 10,
      attenuationS: att,
      clockSynced: (flags[i] & FLAG_CLOCK_UNSYNCED) === 0,
    });
    offset = metaAt + metaLength;
  }
  if (offset !== tempIds.length) throw new WireFormatError('enc.tempIds', 'longer than the protocols listed');
  return out;
}

/** A human-readable view of a batch for `vgw decode` and logs of the backend. */
export function batchToJson(b: Batch): Record<string, unknown> {
  return {
    v: WIRE_SCHEMA_VERSION,
    kind: b.kind,
    id: b.id,
    gateway: b.gateway,
    venue: b.venue,
    life: b.life,
    seq: b.seq,
    createdAt: new Date(b.createdAt).toISOString(),
    ...(b.part !== undefined ? { part: b.part, last: b.last } : {}),
    hash: b.hash.toString('hex'),
    sig: b.sig ? b.sig.toString('hex') : null,
    encounters: b.encounters.map((e) => ({
      id: e.id,
      protocol: e.protocol,
      tempId: e.tempId.toString('hex'),
      metadata: e.metadata.toString('hex'),
      firstSeen: new Date(e.firstSeen).toISOString(),
      lastSeen: new Date(e.lastSeen).toISOString(),
      count: e.count,
      rssiMin: e.rssiMin,
      rssiMax: e.rssiMax,
      rssiMean: e.rssiMean,
      attenuationS: e.attenuationS,
      clockSynced: e.clockSynced,
    })),
  };
}
