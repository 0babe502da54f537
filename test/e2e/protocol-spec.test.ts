// The protocol as a contract (issue 10): every payload a live gateway and the reference collector
// exchange is checked against docs/protocol.cddl; a second-language client (clients/python, with
// Debian's python3-cbor2, -paho-mqtt and -cryptography) decodes, verifies, pulls, reads status
// and acks against them and must agree with `vgw decode` and the collector field by field; the
// conformance vectors in docs/vectors must decode (or be refused) as they say, in both languages.
import Database from 'better-sqlite3';
import { decode as cborDecode } from 'cbor-x';
import mqtt from 'mqtt';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ulid } from 'ulid';
import { LocalBroker } from '../../simulators/index.js';
import { configVersion, loadConfig } from '../../core/config/index.js';
import { GatewayRegistry, verifyBatch, type Collector } from '../../collector/index.js';
import { pull } from '../../collector/pull.js';
import {
  batchToJson, cborEncode, COSE_CONTENT_TYPE, ControlSigner, decodeBatch, encodeBatch, gatewayTopics, openControl, readCose, signedBytes, trustedKey,
} from '../../core/wire/index.js';
import { decodeTyped, type Typed } from '../harness/cbor-typed.js';
import { controlProblems, jsonProblems, protocolSchema as schema, unitProblems } from '../harness/protocol-schema.js';
import { startCollector, testBroker } from '../harness/collector.js';
import type { RegistrationRecord } from '../../core/trust/index.js';
import { gatewayKeyOf, provisionTestGateway, unitDoc, signedAck, signedRequest, testBackendKeyFile, type TestIdentity, TEST_BACKEND } from '../harness/identity.js';
import { runProcess, runVgw, spawnVgw, stopGracefully, waitFor, writeJson, type Spawned } from '../harness/processes.js';
import { countSoFar } from '../harness/gateway-db.js';
import { requirePackage } from '../harness/system-packages.js';
import { tempDir } from '../harness/tmp.js';
import { readVectors, writeVectors, type Captured } from '../harness/vectors.js';
import { nonCamelKeys } from '../harness/casing.js';

const ROOT = resolve(__dirname, '../..');
const VECTORS = join(ROOT, 'docs/vectors');
// Debian's interpreter: the one that sees python3-cbor2 and friends (another python3 may be first on PATH)
const PYTHON = '/usr/bin/python3';
const havePython = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import cbor2, paho.mqtt, cryptography']).status === 0;
const requirePython = () =>
  requirePackage(havePython, `${PYTHON} with cbor2, paho-mqtt and cryptography`, 'python3-cbor2 python3-paho-mqtt python3-cryptography');

async function python(args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  const r = await runProcess(PYTHON, ['-m', 'vgw_client', ...args], { cwd: join(ROOT, 'clients/python') });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** Problems of a CBOR batch or pull part: the map, then the 12 columns its enc inflates to. */
function batchProblems(payload: Buffer): string[] {
  const typed = decodeTyped(payload);
  const errs = schema.validate('batch-message', typed);
  if (errs.length > 0) return errs;
  const enc = (typed as Extract<Typed, { t: 'map' }>).v.find(([k]) => k.t === 'tstr' && k.v === 'enc')![1] as Extract<Typed, { t: 'bstr' }>;
  return schema.validate('columns', decodeTyped(inflateRawSync(enc.v)));
}

/** Signed requests the gateway must refuse, each with an error naming the field. */
const BAD_REQUESTS: Array<Record<string, unknown>> = [{ v: 1, op: 'status' }, { op: 'pull', from: 10, to: 5 }, { op: 'pull', from: 'noon', to: 5 }, { op: 'reboot' }];

const payloadOf = (cose: Buffer): string => {
  const read = readCose(cose);
  return read.ok ? read.message.payload.toString() : '';
};

describe('the CDDL checker itself', () => {
  const header = { kind: 'batch' as const, id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: 1, createdAt: 1_795_000_000_000 };
  const good = encodeBatch(header, [], () => Buffer.alloc(64, 1));

  it('passes a batch the encoder wrote and catches each departure from the spec', () => {
    expect(batchProblems(good)).toEqual([]);
    const m = cborDecode(good) as Record<string, unknown>;
    const again = (over: Record<string, unknown>) => Buffer.from(cborEncode({ ...m, created: BigInt(m.created as number), ...over }));
    expect(batchProblems(again({}))).toEqual([]);
    // protocol 1's flaw: created as a float64
    expect(batchProblems(Buffer.from(cborEncode({ ...m, created: 1_795_000_000_000.5 })))).toEqual([expect.stringMatching(/created: expected uint, got float/)]);
    expect(batchProblems(again({ extra: 1 }))).toEqual(['batch-message: unexpected key "extra"']);
    expect(batchProblems(again({ part: 0 })).join()).toMatch(/unexpected key "part"/);
    expect(batchProblems(again({ hash: Buffer.alloc(31) })).join()).toMatch(/hash: size 31/);
    expect(batchProblems(again({ gw: 'a/b' })).join()).toMatch(/gw: "a\/b" does not match/);
    expect(batchProblems(again({ v: 1 })).join()).toMatch(/v: expected 3, got uint 1/);
    // an integer not in its shortest form (seq 1 in two bytes)
    const long = Buffer.from(again({}));
    const at = long.indexOf(Buffer.from('63736571', 'hex')) + 4; // "seq"
    expect(() => decodeTyped(Buffer.concat([long.subarray(0, at), Buffer.from([0x19, 0, 1]), long.subarray(at + 1)]))).toThrow(/not the shortest form/);
  });

  it('checks JSON messages, nested maps and choices, and names the path', () => {
    const to = { v: 3, venue: 'mall-01', gateway: 'gw-01' };
    const req = { ...to, kind: 'request', issuedAt: 1_795_000_000_000, nonce: 'AAAAAAAAAAAAAAAAAAAAAA', replyTo: 'vgw/v3/replies/x' };
    expect(jsonProblems('control-ack', JSON.stringify({ ...to, kind: 'ack', acks: [ulid()] }))).toEqual([]);
    expect(jsonProblems('control-ack', JSON.stringify({ ...to, kind: 'ack', acks: [] }))).toEqual(['control-ack.acks: expected at least 1, found 0']);
    expect(jsonProblems('control-ack', JSON.stringify({ v: 3, kind: 'ack', acks: [ulid()] })).join()).toMatch(/venue: missing/);
    expect(jsonProblems('control-request', JSON.stringify({ ...req, op: 'pull', from: '2026-11-22T00:00:00Z', to: 1795000000000 }))).toEqual([]);
    expect(jsonProblems('control-request', JSON.stringify({ ...req, op: 'pull', from: 1.5, to: 2 })).join()).toMatch(/from/);
    expect(jsonProblems('control-request', JSON.stringify({ ...req, nonce: 'short', op: 'status' })).join()).toMatch(/nonce/);
    expect(controlProblems('control-ack', TEST_BACKEND.sign({ kind: 'ack', venue: 'mall-01', gateway: 'gw-01', acks: [ulid()] }))).toEqual([]);
    expect(controlProblems('control-ack', new ControlSigner(Buffer.alloc(32, 9)).sign({ kind: 'ack', venue: 'mall-01', gateway: 'gw-01', acks: [ulid()] }))).toEqual(['COSE_Sign1: the protected header is {1: -8, 4: kid}']);
    expect(jsonProblems('registration', JSON.stringify({ v: 1, gateway: 'g', venue: 'v', signingKey: 'ab'.repeat(32) }))).toEqual([]);
    expect(jsonProblems('registration', JSON.stringify({ v: 1, gateway: 'g', venue: 'v', signingKey: 'ab'.repeat(32), beacon: { exponent: 10, epoch: 0, identityKey: 'cd'.repeat(16) } }))).toEqual([]);
    expect(jsonProblems('registration', JSON.stringify({ v: 1, gateway: 'g', venue: 'v', signingKey: 'ab'.repeat(32), beacon: { exponent: 10, epoch: 0 } })).join()).toMatch(/beacon/);
  });
});

describe('protocol 3 between a live gateway, the reference collector and the Python client', () => {
  const dir = tempDir('vgw-spec-');
  const prefix = 'spec/v3';
  let broker: LocalBroker;
  let identity: TestIdentity;
  let collector: Collector;
  let gateway: Spawned;
  let tap: mqtt.MqttClient;
  const captured: Array<Captured & { correlation?: string }> = [];
  const errorReplies: Array<Captured & { request: string; requestBytes: Buffer }> = [];
  const badRequests: Buffer[] = [];
  const isBadRequest = (payload: Buffer) => badRequests.some((b) => b.equals(payload));
  const requests: Captured[] = [];
  const gwDb = join(dir, 'gw.db');
  const registryFile = join(dir, 'registry.json');
  const topics = gatewayTopics(prefix, 'mall-01', 'gw-spec');
  const of = (suffix: string) => captured.filter((c) => c.topic.endsWith(suffix));
  /** Replies to the request with this correlation data (the tap also hears the requests). */
  const answers = (corr: string) => captured.filter((c) => c.topic.includes('/replies/') && c.correlation === corr);

  beforeAll(async () => {
    broker = await LocalBroker.start(join(dir, 'broker'));
    identity = provisionTestGateway(dir, 'gw-spec', 'mall-01');
    writeJson(registryFile, [identity.record]);
    tap = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'tap' });
    tap.on('message', (topic, payload, packet) => {
      const corr = packet.properties?.correlationData;
      captured.push({ topic, payload: Buffer.from(payload), contentType: packet.properties?.contentType, correlation: corr ? Buffer.from(corr).toString() : undefined });
    });
    await tap.subscribeAsync(`${prefix}/#`, { qos: 1 });
    collector = await startCollector(broker.url, 'collector-spec', prefix, join(dir, 'collector.db'), [identity.record]);
    gateway = spawnVgw(['run', '-c', writeJson(join(dir, 'gw.json'), {
      gateway: { id: 'gw-spec', venue: 'mall-01' },
      secretsFile: identity.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      radio: { simulated: { seed: 77, phones: 80, arrivalsPerMinute: 60, minDwellS: 20, maxDwellS: 120, speed: 40, anchor: Date.now() + 1500 } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: gwDb, checkpointS: 0.25 },
      uplink: { batchMaxEncounters: 8, batchMaxAgeS: 1, statusIntervalS: 1 },
    })]);
    await waitFor('five acknowledged batches', () => collector.counters.batchesStored >= 5 && of('/ack').length >= 5, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; collector ${JSON.stringify(collector.counters)}; captured ${captured.length}; gateway said:\n${gateway.output().slice(-3000)}`);
    });
  }, 90_000);
  afterAll(async () => {
    if (gateway) await stopGracefully(gateway);
    await collector?.stop();
    await tap?.endAsync();
    await broker?.stop();
  });

  /** Sends a signed request from the tests' backend; returns its bytes. */
  async function request(body: Record<string, unknown>, corr: string): Promise<Buffer> {
    const signed = signedRequest({ venue: 'mall-01', gateway: 'gw-spec' }, `${prefix}/replies/tap`, body);
    requests.push({ topic: topics.request, payload: signed, contentType: COSE_CONTENT_TYPE });
    await tap.publishAsync(topics.request, signed, { qos: 1, properties: { correlationData: Buffer.from(corr), contentType: COSE_CONTENT_TYPE } });
    return signed;
  }
  const key = () => testBackendKeyFile(dir);

  it('the Python client pulls and reads status from the live gateway, as vgw pull does', async () => {
    requirePython();
    const to = Date.now() + 3_600_000;
    const py = await python(['pull', '--url', broker.url, '--prefix', prefix, '--venue', 'mall-01', '--gateway', 'gw-spec', '--from', '0', '--to', String(to), '--registry', registryFile, '--control-key', key()]);
    expect(py.err).toBe('');
    expect(py.status).toBe(0);
    const pyParts = JSON.parse(py.out) as Array<Record<string, unknown> & { encounters: Array<Record<string, unknown>> }>;
    const tsParts = await pull({ control: TEST_BACKEND, broker: testBroker(broker.url, 'ts-puller'), prefix, venue: 'mall-01', gateway: 'gw-spec', from: 0, to, timeoutMs: 10_000, gatewayKeys: [gatewayKeyOf(identity)] });
    const registry = new GatewayRegistry(undefined, [identity.record]);
    for (const p of tsParts) expect(verifyBatch(p, registry).ok).toBe(true);
    // the same encounters, field by field (the parts' ids and times differ: two answers)
    const strip = (p: { encounters: unknown[] }) => p.encounters;
    expect(pyParts.flatMap(strip).length).toBeGreaterThan(5);
    expect(pyParts.flatMap(strip)).toEqual(tsParts.map((p) => batchToJson(p) as { encounters: unknown[] }).flatMap(strip));
    expect(pyParts.at(-1)!.last).toBe(true);

    // Pull parts need no ack; one sent anyway is counted as unknown and changes nothing.
    await tap.publishAsync(topics.ack, signedAck({ venue: 'mall-01', gateway: 'gw-spec' }, [String(pyParts[0].id)]), { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
    type Doc = { state: string; counters: { store: { encountersStored: number; acksUnknown: number } } };
    const { status, doc } = await waitFor('the unknown ack counted', async () => {
      const answer = await python(['status', '--url', broker.url, '--prefix', prefix, '--venue', 'mall-01', '--gateway', 'gw-spec', '--control-key', key(), '--registry', registryFile]);
      expect(answer.status).toBe(0);
      const parsed = JSON.parse(answer.out) as Doc;
      return parsed.counters.store.acksUnknown > 0 ? { status: answer, doc: parsed } : undefined;
    }, 10_000);
    expect(doc.state).toBe('online');
    expect(doc.counters.store.encountersStored).toBeGreaterThan(0);
    expect(doc.counters.store.acksUnknown).toBe(1);
    expect(jsonProblems('status-reply', status.out)).toEqual([]);
    const retained = JSON.parse((await python(['status', '--retained', '--url', broker.url, '--prefix', prefix, '--venue', 'mall-01', '--gateway', 'gw-spec', '--registry', registryFile])).out) as { doc: { state: string }; contentType: string };
    expect(retained).toMatchObject({ doc: { state: 'online' }, contentType: COSE_CONTENT_TYPE, verified: true });
    // a status the gateway's key did not sign: the Python client refuses it as the collector does
    const forgedRegistry = writeJson(join(dir, 'forged-registry.json'), [{ ...identity.record, signingKey: 'ab'.repeat(32) }]);
    const forged = JSON.parse((await python(['status', '--retained', '--url', broker.url, '--prefix', prefix, '--venue', 'mall-01', '--gateway', 'gw-spec', '--registry', forgedRegistry])).out) as Record<string, unknown>;
    expect(forged).toMatchObject({ refused: expect.stringMatching(/^badSignature/) });
    expect(forged.doc).toBeUndefined();
  });

  it('every payload the gateway and the collector exchange conforms to docs/protocol.cddl, with its content type', async () => {
    requirePython();
    await request({ op: 'pull', from: 0, to: Date.now() + 3_600_000 }, 'pull-all');
    await request({ op: 'pull', from: 1000, to: 2000 }, 'pull-empty');
    await request({ op: 'status' }, 'status');
    for (const [i, bad] of BAD_REQUESTS.entries()) {
      badRequests.push(await request(bad, `bad-${i}`));
    }
    await waitFor('the answers', () => [0, 1, 2, 3].every((i) => answers(`bad-${i}`).length === 1) && answers('pull-empty').length === 1 && answers('status').length === 1, 20_000);
    for (const [i, bad] of badRequests.entries()) {
      errorReplies.push({ ...answers(`bad-${i}`)[0], request: payloadOf(bad), requestBytes: bad });
    }
    expect(errorReplies.map((r) => unitDoc<{ error: string }>(r.payload, identity).error)).toEqual([
      'v: must be 3 (protocol version 3, docs/protocol.md)', 'to: must be after from', expect.stringMatching(/^from: /), expect.stringMatching(/^op: /),
    ]);
    // a clean stop: the "stopped" status; then a unit with an unsynchronised clock, killed: its Will
    expect(await stopGracefully(gateway)).toBe(0);
    await waitFor('the stopped status', () => of('/gw-spec/status').some((c) => c.payload.includes('"stopped"')), 10_000);
    const unsynced = provisionTestGateway(dir, 'gw-unsynced', 'mall-01');
    writeJson(registryFile, [identity.record, unsynced.record]);
    const b = spawnVgw(['run', '-c', writeJson(join(dir, 'gw-unsynced.json'), {
      gateway: { id: 'gw-unsynced', venue: 'mall-01' }, secretsFile: unsynced.secretsFile, broker: { url: broker.url }, topicPrefix: prefix,
      radio: { simulated: { seed: 5, phones: 4, arrivalsPerMinute: 60, minDwellS: 10, maxDwellS: 30, speed: 40, anchor: Date.now() + 1000 } },
      clock: { syncCheck: 'assume-unsynced' },
      store: { path: join(dir, 'gw-unsynced.db'), checkpointS: 0.25 }, uplink: { batchMaxEncounters: 4, batchMaxAgeS: 1 },
    })]);
    await waitFor('a batch of the unsynchronised unit', () => of('/gw-unsynced/batch').length > 0, 30_000);
    b.proc.kill('SIGKILL');
    await waitFor('its Last Will', () => of('/gw-unsynced/status').some((c) => c.payload.includes('connection lost')), 10_000);
    const will = JSON.parse((await python(['status', '--retained', '--url', broker.url, '--prefix', prefix, '--venue', 'mall-01', '--gateway', 'gw-unsynced', '--registry', registryFile])).out) as { doc: Record<string, unknown>; contentType: string };
    expect(will).toMatchObject({ doc: { state: 'offline', reason: 'connection lost' }, contentType: COSE_CONTENT_TYPE, verified: true });
    expect(will.doc.at).toBeUndefined();
    // Item 8: with the clock unsynchronised, the simulated radio's encounters carry flag bit 0.
    const flagged = decodeBatch(of('/gw-unsynced/batch')[0].payload).encounters;
    expect(flagged.length).toBeGreaterThan(0);
    expect(flagged.every((e) => !e.clockSynced)).toBe(true);

    const keyOfTopic = (topic: string) => gatewayKeyOf(topic.includes('/gw-unsynced/') ? unsynced : identity);
    const kinds = new Map<string, number>();
    const count = (k: string) => kinds.set(k, (kinds.get(k) ?? 0) + 1);
    for (const c of captured) {
      const where = `${c.topic} (${c.correlation ?? 'no correlation'})`;
      if (c.topic.endsWith('/batch') || (c.topic.includes('/replies/') && c.contentType === 'application/cbor')) {
        expect(c.contentType, where).toBe('application/cbor');
        expect(batchProblems(c.payload), where).toEqual([]);
        count(c.topic.endsWith('/batch') ? 'batch' : 'pull-part');
      } else if (c.topic.endsWith('/ack')) {
        expect(c.contentType, where).toBe(COSE_CONTENT_TYPE);
        expect(controlProblems('control-ack', c.payload), where).toEqual([]);
        count('ack');
      } else if (c.topic.endsWith('/status')) {
        expect(c.contentType, where).toBe(COSE_CONTENT_TYPE);
        expect(unitProblems('status', c.payload, keyOfTopic(c.topic)), where).toEqual([]);
        const doc = unitDoc<{ reason?: string }>(c.payload);
        expect(nonCamelKeys(doc), where).toEqual([]);
        count(`status ${doc.reason ?? 'online'}`);
      } else if (c.topic.endsWith('/req')) {
        expect(c.contentType, where).toBe(COSE_CONTENT_TYPE);
        if (!isBadRequest(c.payload)) expect(controlProblems('control-request', c.payload), where).toEqual([]);
        count('request');
      } else if (c.topic.includes('/replies/')) {
        expect(c.contentType, where).toBe(COSE_CONTENT_TYPE);
        const doc = unitDoc<{ ok?: boolean }>(c.payload, identity);
        expect(unitProblems(doc.ok === false ? 'error-reply' : 'status-reply', c.payload, gatewayKeyOf(identity)), where).toEqual([]);
        expect(nonCamelKeys(doc), where).toEqual([]);
        count(doc.ok === false ? 'error-reply' : 'status reply');
      } else {
        throw new Error(`unexpected topic ${c.topic}`);
      }
    }
    expect(Object.fromEntries(kinds)).toMatchObject({ 'status stopped': 1, 'status connection lost': 1, 'error-reply': 4 });
    for (const k of ['batch', 'pull-part', 'ack', 'status online', 'status reply', 'request']) expect(kinds.get(k), k).toBeGreaterThan(0);
    // the empty pull part: n = 0 and B = 0, as the document says
    const empty = answers('pull-empty')[0];
    expect(decodeBatch(empty.payload)).toMatchObject({ part: 0, last: true, encounters: [] });
    expect((cborDecode(inflateRawSync((cborDecode(empty.payload) as { enc: Buffer }).enc)) as unknown[])[9]).toBe(0);
    // the registration records the collector read
    expect(jsonProblems('registry', readFileSync(registryFile))).toEqual([]);
  });

  it('the Python client decodes and verifies every batch as vgw decode does, and as the collector stored it', async () => {
    requirePython();
    const files = of('/batch').map((c, i) => {
      const f = join(dir, `captured-${i}.cbor`);
      writeFileSync(f, c.payload);
      return f;
    });
    const py = await python(['decode', '--registry', registryFile, ...files]);
    expect(py.status).toBe(0);
    const verdicts = py.out.trim().split('\n').map((l) => JSON.parse(l) as { file: string; batch?: Record<string, unknown> & { encounters: Array<Record<string, unknown>> }; signedBytes?: string; refused?: string });
    expect(verdicts).toHaveLength(files.length);
    const rows = new Database(join(dir, 'collector.db'), { readonly: true });
    let encounters = 0;
    for (const v of verdicts) {
      expect(v.refused, v.file).toBeUndefined();
      const cli = await runVgw(['decode', v.file]);
      expect(cli.status).toBe(0);
      expect(v.batch).toEqual(JSON.parse(cli.stdout));
      const b = decodeBatch(readFileSync(v.file));
      expect(v.signedBytes).toBe(signedBytes(b, b.hash).toString('hex'));
      if (b.gateway !== 'gw-spec') continue;
      for (const e of v.batch!.encounters) {
        const r = rows.prepare('SELECT * FROM encounters WHERE gateway = ? AND life = ? AND id = ?').get(b.gateway, b.life, e.id) as Record<string, unknown>;
        expect(r, `encounter ${String(e.id)}`).toBeDefined();
        expect({
          tempId: (r.temp_id as Buffer).toString('hex'), metadata: (r.metadata as Buffer).toString('hex'),
          firstSeen: new Date(r.first_seen as number).toISOString(), lastSeen: new Date(r.last_seen as number).toISOString(),
          count: r.count, rssiMin: r.rssi_min, rssiMax: r.rssi_max, rssiMean: r.rssi_mean,
          attenuationS: JSON.parse(r.attenuation_s as string), clockSynced: r.clock_synced === 1,
        }).toEqual({ ...e, id: undefined, protocol: undefined });
        encounters++;
      }
    }
    rows.close();
    expect(encounters).toBeGreaterThan(20);
  });

  it('vgw export gives one duration and one mean for an encounter, from the gateway database or the collector', async () => {
    const at = async (db: string) => {
      const r = await runVgw(['export', '--db', db, '--from', '0', '--to', String(Date.now() + 86_400_000)]);
      expect(r.status, r.stderr).toBe(0);
      return new Map((JSON.parse(r.stdout) as Array<Record<string, unknown>>).map((e) => [e.tempId as string, e]));
    };
    const gw = await at(gwDb);
    const col = await at(join(dir, 'collector.db'));
    expect(col.size).toBeGreaterThan(20);
    for (const [tempId, e] of col) expect({ ...gw.get(tempId), venue: e.venue, gateway: e.gateway }).toEqual(e);
  });

  it('the Python client consumes batches, stores them and acks after its commit: the gateway outbox empties', async () => {
    requirePython();
    const pyPrefix = 'py/v3';
    const unit = provisionTestGateway(dir, 'gw-py', 'market-02');
    const registry = writeJson(join(dir, 'py-registry.json'), [unit.record]);
    const pyDb = join(dir, 'py.db');
    const consumer = spawn(PYTHON, ['-m', 'vgw_client', 'consume', '--url', broker.url, '--prefix', pyPrefix, '--registry', registry, '--db', pyDb, '--client-id', 'py-consumer', '--control-key', testBackendKeyFile(dir)], { cwd: join(ROOT, 'clients/python'), stdio: ['ignore', 'pipe', 'pipe'] });
    let events = '';
    consumer.stdout.on('data', (d: Buffer) => (events += d.toString()));
    consumer.stderr.on('data', (d: Buffer) => (events += d.toString()));
    try {
      await waitFor('the consumer subscribed', () => events.includes('"subscribed"'), 15_000);
      const db = join(dir, 'gw-py.db');
      const unitProc = spawnVgw(['run', '-c', writeJson(join(dir, 'gw-py.json'), {
        gateway: { id: 'gw-py', venue: 'market-02' }, secretsFile: unit.secretsFile, broker: { url: broker.url }, topicPrefix: pyPrefix,
        radio: { simulated: { seed: 9, phones: 30, arrivalsPerMinute: 60, minDwellS: 10, maxDwellS: 40, speed: 40, anchor: Date.now() + 1000 } },
        clock: { syncCheck: 'assume-synced' },
        store: { path: db, checkpointS: 0.25 }, uplink: { batchMaxEncounters: 8, batchMaxAgeS: 1, resendInitialS: 1 },
      })]);
      await waitFor('encounters stored and acknowledged by the Python consumer', () => countSoFar(db, 'SELECT count(*) FROM encounters') > 5 && countSoFar(db, 'SELECT count(*) FROM batches WHERE acked_at IS NOT NULL') >= 1, 30_000);
      expect(await stopGracefully(unitProc)).toBe(0);
      const gw = new Database(db, { readonly: true });
      const pending = gw.prepare('SELECT count(*) FROM batches WHERE acked_at IS NULL').pluck().get() as number;
      const stored = gw.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
      gw.close();
      expect(stored).toBeGreaterThan(5);
      expect(pending).toBe(0); // every batch acknowledged by the Python consumer
      const py = new Database(pyDb, { readonly: true });
      expect(py.prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(stored);
      py.close();
      expect(events).not.toContain('"refused"');
    } finally {
      consumer.kill('SIGTERM');
    }
  });

  it('every status says which software (this build) and which configuration (its digest, from the file) the unit runs', () => {
    const built = (JSON.parse(readFileSync(join(ROOT, 'dist/build-info.json'), 'utf8')) as { commit: string }).commit;
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const statuses = of('/gw-spec/status').map((c) => unitDoc<{ software: unknown; config: unknown }>(c.payload, identity));
    expect(statuses.length).toBeGreaterThan(2);
    for (const s of statuses) {
      expect(s.software).toEqual({ version: pkg.version, commit: built });
      // no configuration from the backend: the file alone, and the status says so
      expect(s.config).toEqual({ version: configVersion(loadConfig(join(dir, 'gw.json'))), source: 'file', remote: { version: null, state: 'none', last: null } });
    }
  });

  it('the collector refuses a protocol 1 batch by name and does not acknowledge it', async () => {
    const before = { ...collector.counters };
    const acksBefore = of('/ack').length;
    await tap.publishAsync(topics.batch, readFileSync(join(VECTORS, 'bad/protocol-1.cbor')), { qos: 1 });
    // refused as it is read, before any commit: there is nothing later to wait for
    await waitFor('the refusal', () => collector.counters.batchesRejected === before.batchesRejected + 1, 10_000);
    expect(collector.counters.batchesStored).toBe(before.batchesStored);
    expect(of('/ack').length).toBe(acksBefore);
    expect(() => decodeBatch(readFileSync(join(VECTORS, 'bad/protocol-1.cbor')))).toThrow(/^v: protocol version 1 is retired/);
  });

  it('writes the conformance vectors when asked (make vectors)', () => {
    if (!process.env.VGW_WRITE_VECTORS) return;
    const [status, stopped, will] = ['"online"', '"stopped"', 'connection lost'].map((s) => [...of('/status')].reverse().find((c) => c.payload.includes(s))!);
    writeVectors(VECTORS, {
      batches: of('/gw-spec/batch').slice(0, 3).concat(of('/gw-unsynced/batch').slice(0, 1)),
      // the first two parts of a full answer, its last, and the one part of an empty range
      pullParts: [...answers('pull-all').slice(0, 2), answers('pull-all').at(-1)!, ...answers('pull-empty')],
      acks: of('/ack').slice(0, 1),
      requests: requests.filter((r) => !isBadRequest(r.payload)),
      errorReplies,
      statuses: [
        { ...status, name: 'status-online', description: 'the retained status of a running gateway (simulated radio, beacon off)' },
        { ...answers('status')[0], name: 'status-reply', description: 'the answer to a signed status request' },
        { ...stopped, name: 'status-stopped', description: 'the retained status after a clean stop' },
        { ...will, name: 'status-will', description: 'the Last Will, published by the broker when the connection was lost (no at)' },
      ],
      records: JSON.parse(readFileSync(registryFile, 'utf8')) as RegistrationRecord[],
      secrets: identity.secrets,
      backend: TEST_BACKEND,
    });
  });
});

describe('conformance vectors (docs/vectors)', () => {
  it('each good batch decodes to its expected JSON and verifies; each bad one is refused where it says', () => {
    const index = readVectors(VECTORS);
    const registry = new GatewayRegistry(join(VECTORS, index.registry));
    expect(index.vectors.length).toBeGreaterThan(20);
    for (const v of index.vectors) {
      const payload = readFileSync(join(VECTORS, v.payload));
      if (v.type === 'batch' || v.type === 'pull-part') {
        if (v.expect) {
          const b = decodeBatch(payload);
          expect(batchToJson(b), v.name).toEqual(JSON.parse(readFileSync(join(VECTORS, v.expect), 'utf8')));
          expect(signedBytes(b, b.hash).toString('hex'), v.name).toBe(v.signedBytes);
          expect(verifyBatch(b, registry).ok, v.name).toBe(true);
          expect(batchProblems(payload), v.name).toEqual([]);
        } else if (v.refusal!.stage === 'decode') {
          expect(() => decodeBatch(payload), v.name).toThrow(new RegExp(`^${v.refusal!.field.replace('.', '\\.')}: `));
          // version 1 as it was: "created" followed by a float64 (0xfb), as protocol.md describes
          if (v.name === 'protocol-1') expect(payload.includes(Buffer.from('6763726561746564fb', 'hex'))).toBe(true);
        } else {
          // It decodes, so the schema must admit it: verification, not the CDDL, refuses it.
          expect(batchProblems(payload), v.name).toEqual([]);
          const verdict = verifyBatch(decodeBatch(payload), registry);
          const reasons = { 'not-registered': /is not registered/, 'wrong-venue': /is registered at venue/, unsigned: /^unsigned batch/, 'bad-signature': /^signature does not verify/ };
          expect(verdict.ok, v.name).toBe(false);
          expect(!verdict.ok && verdict.reason, v.name).toMatch(reasons[v.refusal!.code]);
        }
      } else if (v.controlRefusal) {
        const opened = openControl(payload, 'ack', { venue: 'mall-01', gateway: 'gw-spec' }, [trustedKey(Buffer.from(index.backendKey, 'hex'))], 65_536);
        expect(opened, v.name).toMatchObject({ ok: false, reason: v.controlRefusal });
      } else if (v.rule) {
        if (v.signedBy === 'backend') expect(controlProblems(v.rule, payload), v.name).toEqual([]);
        else expect(unitProblems(v.rule, payload, registry.lookup(v.signedBy!)!.signer), v.name).toEqual([]);
        expect(payloadOf(payload), v.name).toBe(v.signedPayload);
      } else if (v.answer) {
        expect(payloadOf(payload), v.name).toBe(v.signedPayload); // signed, but refused for a field: its answer names it
      } else {
        throw new Error(`${v.name}: a vector this test has no check for`);
      }
    }
    expect(jsonProblems('registry', readFileSync(join(VECTORS, index.registry)))).toEqual([]);
  });

  it('the Python client agrees on every vector', async () => {
    requirePython();
    const r = await python(['vectors', VECTORS]);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toEqual({ vectors: readVectors(VECTORS).vectors.length, failed: [] });
    expect(r.status).toBe(0);
  });
});
