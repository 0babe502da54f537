// Conformance vectors (docs/vectors/): payloads captured from a live gateway and collector, the
// JSON each decodes to, and bad variants of them with the refusal each must get. Written by
// `make vectors` (test/e2e/protocol-spec.test.ts with VGW_WRITE_VECTORS=1); read by that test, by the
// Python client and by any backend team's decoder.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { join } from 'node:path';
import {
  batchToJson, cborDecode, cborEncode, cborUint, contentHash, COSE_CONTENT_TYPE, ControlSigner, decodeBatch, encodeBatch, readCose, signedBytes, signingKeyProofBytes, signUnitMessage, WIRE_SCHEMA_VERSION,
} from '../../core/wire/index.js';
import { encodeMetadata, encryptTempId, issueTempIds, ROLE_CENTRAL, ROLE_PERIPHERAL, tempIdBytes } from '../../core/bluetrace/index.js';
import { toWire } from '../../core/encounters/index.js';
import { PROTOCOL_BLUETRACE } from '../../core/protocols/index.js';
import { signBytes, signingKeyFromSeed, type RegistrationRecord, type Secrets } from '../../core/trust/index.js';

export type VectorType = 'batch' | 'pull-part' | 'ack' | 'request' | 'tempids' | 'config' | 'trust' | 'signing-key' | 'signing-key-request' | 'error-reply' | 'status';

export interface Vector {
  name: string;
  type: VectorType;
  description: string;
  topic?: string;
  contentType: string;
  payload: string;
  /** Good batches and parts: the JSON `vgw decode` prints, and the exact signed bytes in hex. */
  expect?: string;
  signedBytes?: string;
  /** Bad batches: where the reference collector refuses it (decode: the field; verify: the code). */
  refusal?: { stage: 'decode'; field: string } | { stage: 'verify'; code: 'not-registered' | 'wrong-venue' | 'unsigned' | 'bad-signature' };
  /** Bad requests: the error the gateway answered. */
  answer?: string;
  /** COSE_Sign1 messages: the JSON payload the signature covers, its CDDL rule, and whose key signed it ("backend", or a gateway id of the registry). */
  signedPayload?: string;
  rule?: string;
  signedBy?: string;
  /** Control messages a gateway refuses before reading them: why (docs/protocol.md, "Control messages"). */
  controlRefusal?: 'unsigned' | 'unknownKey' | 'badSignature' | 'wrongGateway';
}

export interface VectorIndex {
  protocol: 3;
  registry: string;
  secrets: string;
  /** The public key (hex) of the test backend key that signed the control messages. */
  backendKey: string;
  vectors: Vector[];
}

export interface Captured {
  topic: string;
  payload: Buffer;
  contentType?: string;
}

type CborMap = Record<string, unknown>;

/** Re-encodes a batch map as the gateway would (uint64 for big integers). */
/** Version 1 wrote `created` as a CBOR float64: the uint64 (0x1b) after the key becomes 0xfb and the same value. */
export function protocolOne(payload: Buffer): Buffer {
  const key = Buffer.from('67637265617465641b', 'hex'); // "created", then an 8-byte uint
  const at = payload.indexOf(key);
  if (at < 0) throw new Error('no uint64 created to rewrite');
  const out = Buffer.from(payload);
  const created = Number(out.readBigUInt64BE(at + key.length));
  out[at + key.length - 1] = 0xfb;
  out.writeDoubleBE(created, at + key.length);
  return out;
}

function encodeMap(m: CborMap): Buffer {
  const out: CborMap = {};
  for (const [k, v] of Object.entries(m)) out[k] = typeof v === 'number' ? cborUint(v) : v;
  return Buffer.from(cborEncode(out));
}

function resign(m: CborMap, secrets: Secrets): CborMap {
  const b = { kind: m.kind, id: m.id, gateway: m.gw, venue: m.venue, life: m.life, seq: m.seq, createdAt: m.created, part: m.part, last: m.last } as Parameters<typeof signedBytes>[0];
  return { ...m, sig: signBytes(signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex')), signedBytes(b, m.hash as Buffer)) };
}

/** Replaces enc (and its hash) by `columns`, re-signed: only the column fault remains. */
function withColumns(m: CborMap, columns: unknown[], secrets: Secrets): CborMap {
  const enc = deflateRawSync(cborEncode(columns), { level: 9 });
  return resign({ ...m, enc, hash: contentHash(enc) }, secrets);
}

/** A batch holding BlueTrace encounters: temp IDs issued with a fixed test key, metadata of both roles. */
function bluetraceBatch(record: RegistrationRecord, secrets: Secrets, topic: string): Captured {
  const key = Buffer.alloc(32, 0x42);
  const uid = Buffer.alloc(21, 0x07).toString('base64');
  const base = { firstSeen: 1_795_000_000_000, lastSeen: 1_795_000_080_000, rssiMin: -71, rssiMax: -64, rssiSum: -135, rssiCount: 2, bucketMs: [0, 20_000, 0, 0], clockSynced: true, count: 2 };
  const bt = (id: number, role: 0 | 1, model: string) => toWire({
    ...base, id, protocol: PROTOCOL_BLUETRACE, metadata: encodeMetadata({ role, rs: role === ROLE_PERIPHERAL ? -62 : 127, org: 'ID_PL', model }),
    tempId: tempIdBytes(encryptTempId(key, uid, 1_794_999_940, 1_795_000_840, Buffer.alloc(16, id)))!,
  });
  const en = toWire({ ...base, id: 2, protocol: 0, tempId: Buffer.alloc(16, 0xe1), metadata: Buffer.from('40080000', 'hex') });
  const header = { kind: 'batch' as const, id: '01JDX3K9Q6V5S8M2R4T7W0Y1ZB', gateway: record.gateway, venue: record.venue, life: '01JDX3K9Q6V5S8M2R4T7W0Y1ZC', seq: 1, createdAt: 1_795_000_090_000 };
  const sign = (d: Buffer) => signBytes(signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex')), d);
  return { topic, payload: encodeBatch(header, [bt(1, ROLE_PERIPHERAL, 'Pixel 7'), en, bt(3, ROLE_CENTRAL, 'SM-A515F')], sign), contentType: 'application/cbor' };
}

/** The JSON a COSE_Sign1 message carries (read, not verified: the checks are the tests'). */
function coseText(bytes: Buffer): string {
  const read = readCose(bytes);
  if (!read.ok) throw new Error(read.reason);
  return read.message.payload.toString('utf8');
}

/** A temp-ID answer for the first registered gateway: three temp IDs of a fixed test key and UID, from a fixed time. */
function tempIdsAnswer(record: RegistrationRecord, backend: ControlSigner, ackTopic: string): Captured {
  const startS = 1_796_600_000;
  const tempIds = issueTempIds(Buffer.alloc(32, 0x5e), Buffer.alloc(21, 0x75).toString('base64'), startS, 3);
  const payload = backend.sign({ kind: 'tempIds', venue: record.venue, gateway: record.gateway, id: '01KTEMP1D5VECT0R0000000000', tempIds, refreshAt: startS + 43_200 });
  return { topic: ackTopic.replace(/\/ack$/, '/tempids'), payload, contentType: COSE_CONTENT_TYPE };
}

/** A configuration for the first registered gateway (docs/protocol.md, "Configuration"), at a fixed time. */
export function configMessage(record: RegistrationRecord, backend: ControlSigner, ackTopic: string): Captured {
  const payload = backend.sign({
    kind: 'config', venue: record.venue, gateway: record.gateway, version: 7, issuedAt: 1_796_600_000_000,
    settings: { uplink: { statusIntervalS: 300 }, log: { level: 'warn' } }, layers: [{ layer: 'fleet', version: 3 }, { layer: 'gateway', version: 7 }],
  });
  return { topic: ackTopic.replace(/\/ack$/, '/config'), payload, contentType: COSE_CONTENT_TYPE };
}

/** A signed update request (docs/protocol.md, "Requests"), at a fixed time with a fixed nonce. */
function updateRequest(record: RegistrationRecord, backend: ControlSigner, ackTopic: string): Captured {
  const base = ackTopic.replace(/\/ack$/, '');
  const payload = backend.sign({
    kind: 'request', venue: record.venue, gateway: record.gateway, issuedAt: 1_796_600_000_000, nonce: 'dXBkYXRlLXZlY3Rvci0x', replyTo: `${base.split('/').slice(0, -2).join('/')}/replies/vgw-backend`,
    op: 'update', manifest: 'https://releases.example/venue-gateway-0.2.0-linux-arm64.manifest.cose', version: '0.2.0',
  });
  return { topic: `${base}/req`, payload, contentType: COSE_CONTENT_TYPE };
}

/** The backend keys to trust, and a rotation of the first gateway's signing key (order, request, acceptance), at a fixed time with fixed keys. */
function governanceMessages(record: RegistrationRecord, secrets: Secrets, backend: ControlSigner, ackTopic: string): Record<'trust' | 'keyOrder' | 'keyRequest' | 'keyAccepted', Captured> {
  const base = ackTopic.replace(/\/ack$/, '');
  const to = { venue: record.venue, gateway: record.gateway };
  const issuedAt = 1_796_600_000_000;
  const previous = record.signingKey;
  const next = signingKeyFromSeed(Buffer.alloc(32, 0x77)).publicKey.toString('hex');
  const pop = signBytes(signingKeyFromSeed(Buffer.alloc(32, 0x77)), signingKeyProofBytes(record.venue, record.gateway, 1, previous, next)).toString('hex');
  const cose = (topic: string, payload: Buffer): Captured => ({ topic, payload, contentType: COSE_CONTENT_TYPE });
  return {
    trust: cose(`${base}/trust`, backend.sign({ kind: 'trust', ...to, version: 2, issuedAt, keys: [backend.key.publicKey.toString('hex'), signingKeyFromSeed(Buffer.alloc(32, 0x78)).publicKey.toString('hex')] })),
    keyOrder: cose(`${base}/key`, backend.sign({ kind: 'signingKey', ...to, version: 1, issuedAt })),
    keyRequest: cose(`${base}/key/req`, signUnitMessage(signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex')), { v: WIRE_SCHEMA_VERSION, op: 'signingKey', id: '01KS1GN1NGKEYR0TAT10N00000', version: 1, key: next, pop })),
    keyAccepted: cose(`${base}/key`, backend.sign({ kind: 'signingKey', ...to, version: 1, issuedAt: issuedAt + 1000, previous, key: next })),
  };
}

export function writeVectors(dir: string, o: {
  batches: Captured[]; pullParts: Captured[]; acks: Captured[]; requests: Captured[]; errorReplies: Array<Captured & { request: string; requestBytes: Buffer }>;
  statuses: Array<Captured & { name: string; description: string }>; records: RegistrationRecord[]; secrets: Secrets; backend: ControlSigner;
}): void {
  // README.md is written by hand: only the captured files are replaced
  for (const sub of ['good', 'bad']) rmSync(join(dir, sub), { recursive: true, force: true });
  mkdirSync(join(dir, 'good'), { recursive: true });
  mkdirSync(join(dir, 'bad'), { recursive: true });
  writeFileSync(join(dir, 'registry.json'), JSON.stringify(o.records, null, 2) + '\n');
  writeFileSync(join(dir, 'gateway-secrets.json'), JSON.stringify({ ...o.secrets, note: 'TEST KEY of the conformance vectors only: never provision a unit with it' }, null, 2) + '\n');
  const vectors: Vector[] = [];
  const good = (name: string, type: VectorType, c: Captured, description: string) => {
    const ext = c.contentType === 'application/cbor' ? 'cbor' : c.contentType === COSE_CONTENT_TYPE ? 'cose' : 'json';
    writeFileSync(join(dir, 'good', `${name}.${ext}`), c.payload);
    const v: Vector = { name, type, description, topic: c.topic, contentType: c.contentType ?? '', payload: `good/${name}.${ext}` };
    if (ext === 'cose') {
      const read = readCose(c.payload);
      if (!read.ok) throw new Error(`${name}: ${read.reason}`);
      v.signedPayload = read.message.payload.toString('utf8');
      const control = {
        ack: 'control-ack', tempids: 'control-tempids', request: 'control-request', config: 'control-config', trust: 'control-trust', 'signing-key': 'control-signing-key',
      } as Partial<Record<VectorType, string>>;
      v.rule = control[type] ?? (name === 'status-reply' ? 'status-reply' : type);
      // answers name no gateway: every one captured is gw-spec's, the first record
      v.signedBy = control[type] ? 'backend' : ((JSON.parse(v.signedPayload) as { gateway?: string }).gateway ?? o.records[0].gateway);
    }
    if (type === 'batch' || type === 'pull-part') {
      const b = decodeBatch(c.payload);
      writeFileSync(join(dir, 'good', `${name}.expected.json`), JSON.stringify(batchToJson(b), null, 2) + '\n');
      v.expect = `good/${name}.expected.json`;
      v.signedBytes = signedBytes(b, b.hash).toString('hex');
    }
    vectors.push(v);
  };
  o.batches.forEach((c, i) => good(`batch-${i + 1}`, 'batch', c, `outbox batch seq ${decodeBatch(c.payload).seq}, ${decodeBatch(c.payload).encounters.length} encounters`));
  good('batch-bluetrace', 'batch', bluetraceBatch(o.records[0], o.secrets, o.batches[0].topic), 'outbox batch with two BlueTrace encounters (protocol 1, one per role) beside an EN one: made by the encoder with the test key, not captured');
  o.pullParts.forEach((c, i) => {
    const b = decodeBatch(c.payload);
    good(`pull-part-${i + 1}`, 'pull-part', c, `pull part ${b.part}${b.last ? ' (last)' : ''}, ${b.encounters.length} encounters${b.encounters.length === 0 ? ': an empty range (B = 0)' : ''}`);
  });
  o.acks.forEach((c, i) => good(`ack-${i + 1}`, 'ack', c, "the reference collector's ack"));
  o.requests.forEach((c, i) => {
    const read = readCose(c.payload);
    good(`request-${i + 1}`, 'request', c, `a signed request: ${read.ok ? read.message.payload.toString() : '?'}`);
  });
  good('tempids-1', 'tempids', tempIdsAnswer(o.records[0], o.backend, o.acks[0].topic), "a temp-ID answer: made by the backend's signer with a test BlueTrace key, not captured");
  good('config-1', 'config', configMessage(o.records[0], o.backend, o.acks[0].topic), "a unit's configuration, retained on its config topic: made by the backend's signer, not captured");
  good('update-request-1', 'request', updateRequest(o.records[0], o.backend, o.acks[0].topic), "a signed update request (take release 0.2.0 from the manifest at that URL): made by the backend's signer, not captured");
  const governed = governanceMessages(o.records[0], o.secrets, o.backend, o.acks[0].topic);
  good('trust-1', 'trust', governed.trust, "the backend keys a unit is to trust (an overlap: the test backend key and another), retained: made by the backend's signer, not captured");
  good('signing-key-1', 'signing-key', governed.keyOrder, "an order to make rotation 1 of the unit's signing key, retained: made by the backend's signer, not captured");
  good('signing-key-request-1', 'signing-key-request', governed.keyRequest, "the unit's request to register its new key (the seed of 32 bytes 0x77), signed with its registered key, pop by the new one: made with the test keys, not captured");
  good('signing-key-2', 'signing-key', governed.keyAccepted, "the backend's acceptance of that key as the successor of the registered one, retained: made by the backend's signer, not captured");
  o.statuses.forEach((c) => good(c.name, 'status', c, c.description));
  o.errorReplies.forEach((c, i) => {
    good(`error-reply-${i + 1}`, 'error-reply', c, `the gateway's answer to ${c.request}`);
    writeFileSync(join(dir, 'bad', `request-${i + 1}.cose`), c.requestBytes);
    vectors.push({
      name: `bad-request-${i + 1}`, type: 'request', description: `a signed request with a bad field: ${c.request}; \`answer\` is what the gateway replied`,
      contentType: COSE_CONTENT_TYPE, payload: `bad/request-${i + 1}.cose`, signedPayload: c.request, answer: (JSON.parse(coseText(c.payload)) as { error: string }).error,
    });
  });
  // Control messages a gateway refuses unread: each names the reason its counters.control.refused gets.
  const capturedAck = readCose(o.acks[0].payload);
  if (!capturedAck.ok) throw new Error(`the captured ack: ${capturedAck.reason}`);
  const ack = JSON.parse(capturedAck.message.payload.toString()) as Record<string, unknown>;
  const refusedAcks: Array<[string, string, Buffer, NonNullable<Vector['controlRefusal']>]> = [
    ['ack-unsigned', 'the ack as bare JSON: protocol 3 takes only signed control messages', Buffer.from(JSON.stringify(ack)), 'unsigned'],
    ['ack-unknown-key', 'the ack signed by a key the gateway does not trust', new ControlSigner(Buffer.alloc(32, 0x66)).sign(ack as never), 'unknownKey'],
    ['ack-other-gateway', 'the ack signed by the backend key but meant for another gateway', o.backend.sign({ ...ack, gateway: 'gw-other' } as never), 'wrongGateway'],
  ];
  const forged = Buffer.from(o.acks[0].payload);
  forged[forged.length - 1] ^= 1;
  refusedAcks.push(['ack-bad-signature', 'the ack with one bit of its signature flipped', forged, 'badSignature']);
  for (const [name, description, payload, reason] of refusedAcks) {
    const ext = reason === 'unsigned' ? 'json' : 'cose';
    writeFileSync(join(dir, 'bad', `${name}.${ext}`), payload);
    vectors.push({ name, type: 'ack', description, topic: o.acks[0].topic, contentType: ext === 'json' ? 'application/json' : COSE_CONTENT_TYPE, payload: `bad/${name}.${ext}`, controlRefusal: reason });
  }

  const base = cborDecode(o.batches[0].payload) as CborMap;
  const pullBase = cborDecode(o.pullParts[0].payload) as CborMap;
  const columns = cborDecode(inflateRawSync(base.enc as Buffer)) as unknown[];
  const bad = (name: string, description: string, payload: Buffer, refusal: Vector['refusal']) => {
    writeFileSync(join(dir, 'bad', `${name}.cbor`), payload);
    vectors.push({ name, type: 'batch', description, contentType: 'application/cbor', payload: `bad/${name}.cbor`, refusal });
  };
  const flipped = Buffer.from(base.enc as Buffer);
  flipped[Math.floor(flipped.length / 2)] ^= 0x01;
  const sig = Buffer.from(base.sig as Buffer);
  sig[10] ^= 0x80;
  const { sig: _unsigned, ...unsigned } = base;
  const { last: _last, ...noLast } = pullBase;
  bad('protocol-2', 'v: 2, the retired version whose acks and requests were unsigned (otherwise a valid batch, re-signed)', encodeMap(resign({ ...base, v: 2 }, o.secrets)), { stage: 'decode', field: 'v' });
  bad('protocol-1', 'v: 1, the retired format: created as a float64 (its signature covered a CBOR re-encoding of the header)', protocolOne(encodeMap({ ...base, v: 1 })), { stage: 'decode', field: 'v' });
  bad('hash-mismatch', 'one bit of enc flipped: the hash no longer matches', encodeMap({ ...base, enc: flipped }), { stage: 'decode', field: 'hash' });
  bad('truncated', 'the payload cut short', o.batches[0].payload.subarray(0, o.batches[0].payload.length - 20), { stage: 'decode', field: 'payload' });
  bad('part-on-outbox-batch', 'an outbox batch carrying part (re-signed)', encodeMap(resign({ ...base, part: 0 }, o.secrets)), { stage: 'decode', field: 'part' });
  bad('pull-part-without-last', 'a pull part without last (re-signed)', encodeMap(resign(noLast, o.secrets)), { stage: 'decode', field: 'last' });
  bad('eleven-columns', 'enc holds 11 columns (hash and signature fixed up)', encodeMap(withColumns(base, columns.slice(0, 11), o.secrets)), { stage: 'decode', field: 'enc' });
  const protocols = Buffer.from(columns[1] as Buffer);
  protocols[0] = 9;
  bad('unknown-protocol', 'an encounter of protocol 9, which version 3 does not define (hash and signature fixed up)', encodeMap(withColumns(base, [columns[0], protocols, ...columns.slice(2)], o.secrets)), { stage: 'decode', field: 'enc.protocols' });
  bad('forged-signature', 'one bit of sig flipped', encodeMap({ ...base, sig }), { stage: 'verify', code: 'bad-signature' });
  bad('altered-seq', 'seq changed after signing: every header field is signed', encodeMap({ ...base, seq: (base.seq as number) + 1 }), { stage: 'verify', code: 'bad-signature' });
  bad('altered-created', 'created changed by 1 ms after signing', encodeMap({ ...base, created: (base.created as number) + 1 }), { stage: 'verify', code: 'bad-signature' });
  bad('unsigned', 'no sig', encodeMap(unsigned), { stage: 'verify', code: 'unsigned' });
  bad('unregistered-gateway', 'a gateway id the registry lacks (signed by the test key)', encodeMap(resign({ ...base, gw: 'gw-unknown' }, o.secrets)), { stage: 'verify', code: 'not-registered' });
  bad('wrong-venue', 'the registered gateway at another venue (signed by its key)', encodeMap(resign({ ...base, venue: 'elsewhere-01' }, o.secrets)), { stage: 'verify', code: 'wrong-venue' });

  const index: VectorIndex = { protocol: 3, registry: 'registry.json', secrets: 'gateway-secrets.json', backendKey: o.backend.key.publicKey.toString('hex'), vectors };
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index, null, 2) + '\n');
}

export function readVectors(dir: string): VectorIndex {
  return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as VectorIndex;
}
