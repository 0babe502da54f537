// BlueTrace end to end on the virtual controller: the daemon (a child process, unmodified noble
// and bleno) fetches its venue's temp IDs from the collector over MQTT, takes turns on the
// advertising controller with the EID beacon, and exchanges temp IDs with simulated OpenTrace
// phones in both roles, beside an Exposure Notification crowd. Ground truth is independent of
// the gateway: the phones' temp IDs decrypt (with the backend's key) to the phones' own UIDs,
// and what the phones kept decrypts to the venue's registered UID.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMetadata, decryptTempId, ROLE_CENTRAL, ROLE_PERIPHERAL } from '../../core/bluetrace/index.js';
import { parseStatus, type LocalStatus, type BluetraceStatus } from '../../core/wire/index.js';
import { LocalBroker, VirtualController } from '../../simulators/index.js';
import type { BluetracePhonesOptions, PhoneBehaviour } from '../../simulators/bluetrace-phones.js';
import { collectorSqlite, startCollector } from '../harness/collector.js';
import { gatewayKeyOf, provisionTestGateway } from '../harness/identity.js';
import { runVgw, sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { controlProblems, jsonProblems, protocolSchema as schema, unitProblems } from '../harness/protocol-schema.js';
import { typedFromJson, decodeTyped, type Typed } from '../harness/cbor-typed.js';
import { inflateRawSync } from 'node:zlib';
import mqtt from 'mqtt';


const dir = tempDir('vgw-bluetrace-');
const key = randomBytes(32);
const SERVICE = 'B82AB3FC-1595-4F6A-80F0-FE094CC218F9';
const CHARACTERISTIC = '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804';
let broker: LocalBroker;
beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  await broker?.stop();
});

type Row = { protocol: number; temp_id: Buffer; metadata: Buffer; first_seen: number; last_seen: number; count: number; rssi_max: number };

/** Per test: which roles a phone plays (some only one, so the collector must show both of the gateway's), how fast phones come. */
type PhoneOverrides = Partial<Pick<BluetracePhonesOptions, 'connect' | 'advertise' | 'arrivalsPerMinute'>> & { linkLatencyMs?: number };

async function runGateway(name: string, behaviour: (i: number) => PhoneBehaviour, phones: number, seconds: number, { linkLatencyMs, ...overrides }: PhoneOverrides = {}) {
  const socketPath = join(dir, `${name}.sock`);
  const now = Date.now();
  const vc = new VirtualController({
    socketPath,
    linkLatencyMs,
    crowd: { seed: 11, phones: 6, arrivalsPerMinute: 30, minDwellS: 10, maxDwellS: 15, anchor: now + 2000 },
    bluetrace: {
      seed: 5, phones, arrivalsPerMinute: 60, minDwellS: seconds - 4, maxDwellS: seconds - 2, anchor: now + 2000, key: key.toString('hex'),
      serviceUuid: SERVICE, characteristicUuid: CHARACTERISTIC, org: 'ID_PL', behaviour, scanEveryMs: [2500, 3500], scanForMs: 1200, ...overrides,
    },
  });
  await vc.start();
  const identity = provisionTestGateway(dir, `gw-${name}`, `venue-${name}`, '0102030405060708090a111213141516');
  const prefix = `test-bt-${name}/v2`;
  const collector = await startCollector(broker.url, `collector-${name}`, prefix, join(dir, `${name}-collector.db`), [identity.record], undefined, key);
  const config = writeJson(join(dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url: broker.url, reconnectS: 0.5 },
    topicPrefix: prefix,
    radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0 } },
    beacon: { enabled: true, transport: `unix:${socketPath}`, deviceId: 1, exponent: 2 },
    bluetrace: { enabled: true, serviceUuid: SERVICE, characteristicUuid: CHARACTERISTIC, org: 'ID_PL', peripheral: { sliceS: 0.5, connectionTimeoutS: 2 }, central: { skipS: 4, connectionTimeoutS: 2 } },
    clock: { syncCheck: 'assume-synced' },
    encounters: { silenceS: 3, bluetraceSilenceS: 6 },
    store: { path: join(dir, `${name}.db`), checkpointS: 0.25 },
    uplink: { batchMaxAgeS: 1, resendInitialS: 1 },
    health: { controlSocket: join(dir, `${name}.ctl`) },
  });
  // Every message on the gateway's topics, for the spec check.
  const seen: Array<{ topic: string; payload: Buffer }> = [];
  const spy = mqtt.connect(broker.url, { clientId: `spy-${name}`, protocolVersion: 5 });
  await new Promise<void>((resolve) => spy.on('connect', () => spy.subscribe(`${prefix}/#`, { qos: 1 }, () => resolve())));
  spy.on('message', (topic, payload) => seen.push({ topic, payload }));
  const daemon = spawnVgw(['run', '-c', config]);
  await sleep(seconds * 1000 + 2000);
  const status = async () => {
    const r = await runVgw(['status', '-c', config, '--json']);
    return parseStatus(JSON.parse(r.stdout), 'vgw status') as LocalStatus;
  };
  return { vc, collector, daemon, status, identity, prefix, seen, spy, config };
}

describe('BlueTrace on the virtual controller', () => {
  it('fetches the venue temp IDs, exchanges with OpenTrace phones in both roles, keeps EN flowing', async () => {
    // Phone 0, 3: central only (the gateway's peripheral role meets them); 1, 4: peripheral only
    // (its central role does); 2, 5: both, one encounter per temp ID whichever role came first.
    const onlyCentral = (i: number) => i % 3 === 0;
    const onlyPeripheral = (i: number) => i % 3 === 1;
    const g = await runGateway('both', () => 'opentrace', 6, 18, { connect: (i) => !onlyPeripheral(i), advertise: (i) => !onlyCentral(i) });
    const st = await g.status();
    const bt = st.counters.bluetrace as BluetraceStatus;
    expect(bt.state).toBe('enabled');
    expect(bt.tempIds.state).toBe('ok');
    expect(bt.tempIds.left).toBeGreaterThanOrEqual(95);
    expect(g.collector.counters.tempIdBatchesIssued).toBeGreaterThanOrEqual(1);
    // the technician's view: vgw doctor checks the supply through the running daemon
    const doctor = JSON.parse((await runVgw(['doctor', '-c', g.config, '--json'])).stdout) as Array<{ check: string; ok: boolean; detail: string }>;
    expect(doctor.find((c) => c.check === 'bluetrace')).toMatchObject({ ok: true, detail: expect.stringMatching(/^\d+ temp IDs left/) });
    const phones = g.vc.bluetrace!.all;
    const rows = await waitFor('BlueTrace encounters at the collector', () => {
      const r = collectorSqlite(g.collector).prepare('SELECT * FROM encounters WHERE protocol = 1').all() as Row[];
      const met = new Set(r.map((x) => decryptTempId(key, x.temp_id)?.uid));
      if (phones.every((p) => met.has(p.uid))) return r;
      throw new Error(`phones met ${phones.filter((p) => met.has(p.uid)).map((p) => p.index).join() || 'none'} of ${phones.length}; phones' records ${phones.map((p) => p.history.length).join()}`);
    }, 30_000);
    const uids = new Set(phones.map((p) => p.uid));
    for (const r of rows) {
      expect(r.temp_id).toHaveLength(61);
      const d = decryptTempId(key, r.temp_id);
      expect(d, 'a temp ID the backend issued').not.toBeNull();
      expect(uids.has(d!.uid)).toBe(true);
      // the sighting lies within its temp ID's validity
      expect(r.first_seen / 1000).toBeGreaterThanOrEqual(d!.start - 1);
      expect(r.last_seen / 1000).toBeLessThanOrEqual(d!.expiry + 1);
      const m = decodeMetadata(r.metadata)!;
      const phone = phones.find((p) => p.uid === d!.uid)!;
      expect(m.org).toBe('ID_PL');
      expect(phone.model).toBe(m.model);
      if (onlyCentral(phone.index)) expect(m.role, 'a phone that only connects met the gateway peripheral').toBe(ROLE_PERIPHERAL);
      if (onlyPeripheral(phone.index)) expect(m.role, 'a phone that only advertises met the gateway central').toBe(ROLE_CENTRAL);
      // rs is the phone's own figure, which only a peripheral exchange carries
      if (m.role === ROLE_CENTRAL) expect(m.rs).toBe(127);
      else expect(m.rs).toBeLessThan(0);
      expect(r.rssi_max).toBeLessThan(0);
    }
    // every phone met the venue, and what the phones kept is the venue's temp ID
    const venueUid = g.identity.record.bluetraceUid;
    expect(venueUid).toMatch(/^[A-Za-z0-9+/]{28}$/);
    const records = phones.flatMap((p) => p.history);
    expect(records.length).toBeGreaterThanOrEqual(phones.length);
    for (const rec of records) expect(decryptTempId(key, rec.msg)?.uid).toBe(venueUid);
    expect(new Set(records.map((r) => r.modelP === 'venue-gateway' ? 'gw-peripheral' : 'gw-central'))).toEqual(new Set(['gw-peripheral', 'gw-central']));
    // both roles counted; the EN crowd still logged beside them
    expect(bt.peripheral!.exchanges).toBeGreaterThanOrEqual(1);
    expect(bt.central!.exchanges).toBeGreaterThanOrEqual(1);
    const en = collectorSqlite(g.collector).prepare('SELECT count(*) AS n FROM encounters WHERE protocol = 0').get() as { n: number };
    expect(en.n).toBeGreaterThanOrEqual(4);
    // the beacon kept rotating while sharing its controller
    expect((st.counters.beacon as { rotations: number }).rotations).toBeGreaterThanOrEqual(3);
    // what went over MQTT is what docs/protocol.cddl says: the temp ID request and answer, the
    // status with its bluetrace part, and batches carrying protocol 1
    const on = (suffix: string) => g.seen.filter((m) => m.topic.endsWith(suffix));
    expect(on('/tempids/req').length).toBeGreaterThanOrEqual(1);
    for (const m of on('/tempids/req')) expect(unitProblems('tempids-request', m.payload, gatewayKeyOf(g.identity))).toEqual([]);
    expect(on('/tempids').length).toBeGreaterThanOrEqual(1);
    for (const m of on('/tempids')) expect(controlProblems('control-tempids', m.payload)).toEqual([]);
    expect(on('/status').length).toBeGreaterThanOrEqual(1);
    for (const m of on('/status')) expect(unitProblems('status', m.payload, gatewayKeyOf(g.identity))).toEqual([]);
    // and `vgw status --json` holds the same counters, both roles' states typed as the CDDL lists them
    expect(schema.validate('counters', typedFromJson(st.counters))).toEqual([]);
    expect(['starting', 'advertising', 'noTempId', 'retrying', 'controller-off', 'stopped']).toContain(bt.peripheral!.state);
    const batches = on('/batch');
    expect(batches.length).toBeGreaterThanOrEqual(1);
    for (const m of batches) {
      const typed = decodeTyped(m.payload);
      expect(schema.validate('batch-message', typed)).toEqual([]);
      const enc = (typed as Extract<Typed, { t: 'map' }>).v.find(([k]) => k.t === 'tstr' && k.v === 'enc')![1] as Extract<Typed, { t: 'bstr' }>;
      expect(schema.validate('columns', decodeTyped(inflateRawSync(enc.v)))).toEqual([]);
    }
    expect(jsonProblems('registration', Buffer.from(JSON.stringify(g.identity.record)))).toEqual([]);

    // The health officer's questions on the collector's database, with the backend's key. Ground
    // truth is the simulator's: every phone's stay overlapped every other's at this one venue.
    const keyFile = join(dir, 'bluetrace.key');
    writeFileSync(keyFile, key.toString('hex'), { mode: 0o600 });
    const registry = writeJson(join(dir, 'registry.json'), [g.identity.record]);
    const db = join(dir, 'both-collector.db');
    const [patient, ...others] = phones;
    type Visit = { venue: string; from: string; to: string; contacts: Array<{ uid: string }>; anonymousEncounters: number };
    const checkVisits = (visits: Visit[]) => {
      expect(visits).toHaveLength(1);
      expect(visits[0].venue).toBe('venue-both');
      // the visit lies within the patient's stay, and the contacts are exactly the other phones
      expect(Date.parse(visits[0].from)).toBeGreaterThanOrEqual(patient.arrival - 1000);
      expect(Date.parse(visits[0].to)).toBeLessThanOrEqual(patient.departure + 1000);
      expect(visits[0].contacts.map((c) => c.uid).sort()).toEqual(others.map((p) => p.uid).sort());
      expect(visits[0].anonymousEncounters).toBeGreaterThanOrEqual(1); // the EN crowd was there too
    };
    // (a) the patient's UID → the visit → the others
    const a = await runVgw(['trace', 'case', '--db', db, '--key-file', keyFile, '--uid', patient.uid, '--json']);
    expect(a.status, a.stderr).toBe(0);
    const caseAnswer = JSON.parse(a.stdout) as { visits: Visit[]; refused: Record<string, number>; bluetraceEncountersOpened: number };
    checkVisits(caseAnswer.visits);
    expect(caseAnswer.bluetraceEncountersOpened).toBe(rows.length);
    expect(caseAnswer.refused).toEqual({ no_msg: 0, expired_id: 0, failed_decryption: 0 });
    // (b) the patient's uploaded history (OpenTrace's upload file) → the venue and time → the others
    const upload = writeJson(join(dir, 'upload.json'), { token: 'upload-token', records: patient.history, events: [] });
    const b = await runVgw(['trace', 'history', '--db', db, '--key-file', keyFile, '--registry', registry, '--history', upload, '--uid', patient.uid, '--json']);
    expect(b.status, b.stderr).toBe(0);
    const historyAnswer = JSON.parse(b.stdout) as { visits: Visit[]; venueRecords: number; records: number };
    expect(historyAnswer.venueRecords).toBe(patient.history.length);
    checkVisits(historyAnswer.visits);
    // the human answer says the same
    const text = await runVgw(['trace', 'case', '--db', db, '--key-file', keyFile, '--uid', patient.uid]);
    expect(text.stdout).toMatch(new RegExp(`^1 venue visits; ${rows.length} BlueTrace encounters opened, refused: none\n`));
    for (const o of others) expect(text.stdout).toContain(o.uid);
    // bad input: a clear error naming the option or the record's field, exit 2
    const badUid = await runVgw(['trace', 'case', '--db', db, '--key-file', keyFile, '--uid', 'nope']);
    expect([badUid.status, badUid.stderr]).toEqual([2, 'vgw: --uid: "nope" is not a BlueTrace UID: expected 28 base64 characters (21 bytes)\n']);
    const badUpload = writeJson(join(dir, 'bad-upload.json'), { records: [patient.history[0], { ...patient.history[0], timestamp: 'noon' }] });
    const badHistory = await runVgw(['trace', 'history', '--db', db, '--key-file', keyFile, '--registry', registry, '--history', badUpload]);
    expect(badHistory.status).toBe(2);
    expect(badHistory.stderr).toMatch(/--history: .*bad-upload\.json: records\[1\]\.timestamp: expected a number/);
    g.spy.end();
    expect(await stopGracefully(g.daemon)).toBe(0);
    expect(g.daemon.output()).not.toContain(records[0].msg); // temp IDs never in the logs
    await g.collector.stop();
    await g.vc.stop();
  });

  it('hostile phones get a clear count, never a crash or a leak', async () => {
    const behaviours: PhoneBehaviour[] = ['silent', 'dropAfterRead', 'notJson', 'tooLong', 'repeat', 'badTempId', 'garbageRead', 'opentrace'];
    const g = await runGateway('hostile', (i) => behaviours[i % behaviours.length], behaviours.length, 16);
    const st = await g.status();
    const bt = st.counters.bluetrace as BluetraceStatus;
    const p = bt.peripheral!;
    console.log(`hostile phones: peripheral ${JSON.stringify(p)}, central ${JSON.stringify(bt.central)}`);
    expect(p.timedOut, 'a phone that connects and never writes').toBeGreaterThanOrEqual(1);
    expect(p.disconnectedBeforeWrite, 'one that disconnects mid-exchange').toBeGreaterThanOrEqual(1);
    expect(p.refused.notJson, 'writes that are not JSON').toBeGreaterThanOrEqual(1);
    expect(p.refused.tooLong, 'writes over the cap').toBeGreaterThanOrEqual(1);
    expect(p.refused.badTempId, 'temp IDs that are not 84 base64 characters').toBeGreaterThanOrEqual(1);
    expect(p.repeatedWrites, 'writes that repeat').toBeGreaterThanOrEqual(1);
    expect(bt.central!.refused.notJson, 'a phone answering reads with garbage').toBeGreaterThanOrEqual(1);
    // only well-formed exchanges became encounters, each of a real phone
    const rows = await waitFor('BlueTrace encounters at the collector', () => {
      const r = collectorSqlite(g.collector).prepare('SELECT * FROM encounters WHERE protocol = 1').all() as Row[];
      return r.length >= 2 ? r : undefined;
    }, 30_000);
    const byUid = new Map(g.vc.bluetrace!.all.map((ph) => [ph.uid, ph]));
    for (const r of rows) expect(byUid.has(decryptTempId(key, r.temp_id)!.uid)).toBe(true);
    expect(await stopGracefully(g.daemon)).toBe(0);
    const out = g.daemon.output();
    expect(out).not.toMatch(/"level":60|uncaught|TypeError/);
    for (const ph of g.vc.bluetrace!.all) expect(out).not.toContain(ph.tempIds[0].tempId.slice(0, 40));
    g.spy.end();
    await g.collector.stop();
    await g.vc.stop();
  });

  it('many phones at once: the cap holds, the ones turned away come back, nothing crashes', async () => {
    // 24 phones within about two seconds, all scanning and advertising, over links slow enough
    // (50 ms a packet: an exchange takes about half a second) that exchanges overlap: the
    // gateway's central meets more than maxConnections (2) at once, its peripheral serves one at a time.
    // Each phone stays 20–22 s: with 24 queued behind a cap of 2 and 50 ms links, 14–16 s left the
    // last phone unmet once when the whole suite loaded both cores (met 23 of 24).
    const g = await runGateway('crowd', () => 'opentrace', 24, 24, { arrivalsPerMinute: 720, linkLatencyMs: 50 });
    const bt = (await g.status()).counters.bluetrace as BluetraceStatus;
    console.log(`many phones: peripheral ${JSON.stringify(bt.peripheral)}, central ${JSON.stringify(bt.central)}, phones ${JSON.stringify(g.vc.bluetrace!.counters)}`);
    expect(bt.central!.deferredBusy, 'phones passed over while the cap was reached').toBeGreaterThanOrEqual(1);
    expect(bt.central!.connections).toBeLessThanOrEqual(2);
    expect(g.vc.bluetrace!.counters.connectFailures, 'phones turned away while another was connected').toBeGreaterThanOrEqual(1);
    const phones = g.vc.bluetrace!.all;
    // every phone was met in the end, by one role or the other
    await waitFor('every phone at the collector', () => {
      const r = collectorSqlite(g.collector).prepare('SELECT temp_id FROM encounters WHERE protocol = 1').all() as Array<{ temp_id: Buffer }>;
      const met = new Set(r.map((x) => decryptTempId(key, x.temp_id)?.uid));
      if (phones.every((p) => met.has(p.uid))) return true;
      throw new Error(`met ${phones.filter((p) => met.has(p.uid)).length} of ${phones.length}`);
    }, 30_000);
    expect(await stopGracefully(g.daemon)).toBe(0);
    expect(g.daemon.output()).not.toMatch(/"level":60|uncaught|TypeError/);
    g.spy.end();
    await g.collector.stop();
    await g.vc.stop();
  });
});
