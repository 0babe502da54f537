// The whole slice against a real Mosquitto: simulated crowd → daemon (a child process) →
// MQTT → collector → SQLite, with the broker stopped and the daemon killed along the way.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CrowdOptions, LocalBroker } from '../../simulators/index.js';
import { type CollectedColumns, Collector } from '../../collector/index.js';
import { pull } from '../../collector/pull.js';
import { ControlSigner, gatewayTopics } from '../../core/wire/index.js';
import { wireSpan } from '../../core/encounters/index.js';
import { crowdEnd, crowdTruth, TruthEncounter } from '../harness/crowd-truth.js';
import { collectorSqlite, startCollector, testBroker } from '../harness/collector.js';
import { countSoFar, waitGatewaySettled } from '../harness/gateway-db.js';
import { gatewayKeyOf, provisionTestGateway, signedAck, unitDoc, signedRequest, TestIdentity, TEST_BACKEND, testBackendKeyFile } from '../harness/identity.js';
import { sleep, spawnVgw, Spawned, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-e2e-');
let broker: LocalBroker;
const SPEED = 40;

beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  await broker?.stop();
});


interface Scenario {
  name: string;
  prefix: string;
  crowd: CrowdOptions;
  truth: Map<string, TruthEncounter>;
  config: string;
  gatewayDb: string;
  collector: Collector;
  identity: TestIdentity;
}

async function scenario(name: string, seed: number, phones: number, shareGroup?: string, shape: Partial<CrowdOptions> = {}): Promise<Scenario> {
  const prefix = `test-${name}/v1`;
  // Starts a moment from now, so the daemon is up before the first phone arrives.
  const crowd: CrowdOptions = { seed, phones, arrivalsPerMinute: 15, minDwellS: 60, maxDwellS: 240, anchor: Date.now() + 2500, ...shape };
  const gatewayDb = join(dir, `${name}-gateway.db`);
  const identity = provisionTestGateway(dir, `gw-${name}`, `venue-${name}`);
  const config = writeJson(join(dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url: broker.url, reconnectS: 0.5, connectTimeoutS: 5 },
    topicPrefix: prefix,
    radio: { simulated: { ...crowd, speed: SPEED } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: gatewayDb, checkpointS: 0.25 },
    uplink: { batchMaxEncounters: 16, batchMaxAgeS: 1, resendInitialS: 1, resendMaxS: 4, statusIntervalS: 1 },
    log: { level: 'debug' },
  });
  const collector = await startCollector(broker.url, `collector-${name}`, prefix, join(dir, `${name}-collector.db`), [identity.record], shareGroup);
  return { name, prefix, crowd, truth: crowdTruth(crowd), config, gatewayDb, collector, identity };
}


function collectorRows(s: Scenario): CollectedColumns[] {
  return collectorSqlite(s.collector).prepare('SELECT * FROM encounters WHERE gateway = ? ORDER BY id').all(`gw-${s.name}`) as CollectedColumns[];
}

/** Waits until the crowd has passed (plus the silence that closes encounters). */
async function waitCrowdGone(s: Scenario): Promise<void> {
  const endWall = s.crowd.anchor + (crowdEnd(s.truth) + 60_000 - s.crowd.anchor) / SPEED;
  await sleep(Math.max(0, endWall - Date.now()) + 1500);
}

function expectExactlyTheTruth(s: Scenario, rows: CollectedColumns[]): void {
  const byRpi = new Map(rows.map((r) => [r.temp_id.toString('hex'), r]));
  expect(rows).toHaveLength(s.truth.size);
  expect(byRpi.size).toBe(rows.length); // one encounter per RPI: nothing duplicated
  for (const t of s.truth.values()) {
    const r = byRpi.get(t.rpi);
    expect(r, `encounter of RPI #${[...s.truth.keys()].indexOf(t.rpi)}`).toBeDefined();
    expect(r!.metadata.toString('hex')).toBe(t.aem);
    expect(r!.clock_synced).toBe(1);
    expect(r!.count).toBe(t.count);
    expect(r!.rssi_min).toBe(t.rssiMin);
    expect(r!.rssi_max).toBe(t.rssiMax);
    expect(r!.rssi_mean).toBe(Math.round((t.rssiSum / t.count) * 10) / 10);
    expect(r!.first_seen).toBe(Math.floor(t.first / 1000) * 1000);
    expect(r!.last_seen).toBe(Math.max(r!.first_seen, Math.ceil(t.last / 1000) * 1000));
    // With adverts 200-270 ms apart no gap reaches the cap: bucket seconds add up to the duration.
    const bucketS = (JSON.parse(r!.attenuation_s as string) as number[]).reduce((a, b) => a + b, 0);
    expect(Math.abs(bucketS - (t.last - t.first) / 1000)).toBeLessThanOrEqual(2);
  }
}

describe('end to end', () => {
  let main: Scenario;
  let daemon: Spawned;

  it('a seeded crowd becomes exactly its encounters at the collector', async () => {
    main = await scenario('main', 101, 30);
    daemon = spawnVgw(['run', '-c', main.config]);
    await waitCrowdGone(main);
    const rows = await waitFor('all encounters at the collector', () => {
      const r = collectorRows(main);
      return r.length >= main.truth.size ? r : undefined;
    });
    await waitGatewaySettled(main.config); // anything extra would have arrived by now
    expectExactlyTheTruth(main, collectorRows(main));
    expect(rows.length).toBe(main.truth.size);
    expect(main.collector.counters.batchesRejected).toBe(0);
    // Every batch acknowledged: the gateway's outbox is empty.
    await waitFor('empty outbox', () => {
      const db = new Database(main.gatewayDb, { readonly: true });
      const n = db.prepare('SELECT count(*) FROM batches WHERE acked_at IS NULL').pluck().get() as number;
      db.close();
      return n === 0;
    });
    // Temp IDs never appear in logs, in any encoding.
    const log = daemon.output();
    expect(log).toContain('daemon started');
    for (const rpi of main.truth.keys()) {
      expect(log).not.toContain(rpi);
      expect(log).not.toContain(Buffer.from(rpi, 'hex').toString('base64').slice(0, 16));
    }
  });

  it('pull returns exactly the encounters overlapping the range', async () => {
    const db = new Database(main.gatewayDb, { readonly: true });
    const all = db.prepare('SELECT id, first_seen, last_seen FROM encounters ORDER BY first_seen').all() as Array<{ id: number; first_seen: number; last_seen: number }>;
    // The rule applies to the wire's whole seconds; both ends fall exactly on an encounter's bound.
    const wire = all.map((e) => ({ id: e.id, ...wireSpan(e.first_seen, e.last_seen) }));
    // from: the earliest last second at or after a third of the way in; to: the first second of an
    // encounter halfway through those that start after it (a range that ends before any encounter
    // ends, which long encounters make possible, would leave `from` undefined)
    const after = wire[Math.floor(all.length / 3)].firstSeen;
    const from = Math.min(...wire.filter((e) => e.lastSeen >= after).map((e) => e.lastSeen));
    const later = wire.filter((e) => e.firstSeen > from).map((e) => e.firstSeen).sort((a, b) => a - b);
    const to = later[Math.floor(later.length / 2)];
    expect(to).toBeGreaterThan(from);
    const expected = wire.filter((e) => e.lastSeen >= from && e.firstSeen < to).map((e) => e.id).sort((a, b) => a - b);
    db.close();
    expect(expected.length).toBeGreaterThan(3);
    expect(expected.length).toBeLessThan(all.length);
    const parts = await pull({
      control: TEST_BACKEND,
      broker: testBroker(broker.url, 'puller-1'),
      prefix: main.prefix, venue: 'venue-main', gateway: 'gw-main', from, to, timeoutMs: 10_000, gatewayKeys: [gatewayKeyOf(main.identity)],
    });
    const got = parts.flatMap((p) => p.encounters.map((e) => e.id)).sort((a, b) => a - b);
    expect(got).toEqual(expected);
    expect(parts.every((p) => p.kind === 'pull')).toBe(true);
    expect(parts[parts.length - 1].last).toBe(true);
    // what was pulled is what the collector holds for those ids
    const rows = new Map(collectorRows(main).map((r) => [r.id, r]));
    for (const e of parts.flatMap((p) => p.encounters)) {
      expect(e.tempId.equals(rows.get(e.id)!.temp_id)).toBe(true);
      expect(e.count).toBe(rows.get(e.id)!.count);
    }
  });

  it('pull through the CLI stores into the collector database and exits 0', async () => {
    const registry = writeJson(join(dir, 'pull-registry.json'), [main.identity.record]);
    const cfg = writeJson(join(dir, 'pull-cli.json'), { broker: { url: broker.url }, topicPrefix: main.prefix, collector: { controlKeyFile: testBackendKeyFile(dir), database: join(dir, 'pulled.db'), registry } });
    const p = spawnVgw(['pull', '--venue', 'venue-main', '--gateway', 'gw-main', '--from', '0', '--to', new Date(Date.now() + 86_400_000).toISOString(), '-c', cfg]);
    expect(await p.exited()).toBe(0);
    const summary = JSON.parse(p.output().trim()) as { encounters: number; newlyStored: number };
    expect(summary.encounters).toBe(main.truth.size);
    expect(summary.newlyStored).toBe(main.truth.size);
    // --json: the parts in order, each as `vgw decode` prints a batch, as its help says
    const json = spawnVgw(['pull', '--venue', 'venue-main', '--gateway', 'gw-main', '--from', '0', '--to', new Date(Date.now() + 86_400_000).toISOString(), '-c', cfg, '--json']);
    expect(await json.exited()).toBe(0);
    const parts = JSON.parse(json.output()) as Array<{ kind: string; part: number; last: boolean; encounters: unknown[] }>;
    expect(parts.map((x) => x.part)).toEqual(parts.map((_, i) => i));
    expect(parts.every((x) => x.kind === 'pull' && Array.isArray(x.encounters))).toBe(true);
    expect(parts.reduce((n, x) => n + x.encounters.length, 0)).toBe(main.truth.size);
    const bad = spawnVgw(['pull', '--venue', 'venue-main', '--gateway', 'gw-main', '--from', 'yesterday', '--to', '5', '-c', cfg]);
    expect(await bad.exited()).toBe(2);
    expect(bad.output()).toMatch(/--from: "yesterday" is not a time/);
    // a gateway the registry does not hold: refused before asking, since its answer could not be checked
    const unknown = spawnVgw(['pull', '--venue', 'venue-main', '--gateway', 'nobody', '--from', '0', '--to', '10', '--timeout', '1', '-c', cfg]);
    expect(await unknown.exited()).toBe(2);
    expect(unknown.output()).toMatch(/--gateway: "nobody" is registered nowhere in .*: add its registration record/);
    // no answer in time (no registry here: nothing to check an answer against)
    const none = spawnVgw(['pull', '--venue', 'venue-main', '--gateway', 'nobody', '--from', '0', '--to', '10', '--timeout', '1', '--broker', broker.url, '--control-key', testBackendKeyFile(dir)]);
    expect(await none.exited()).toBe(3);
  });

  it('acks and requests not signed by a trusted backend key, not for this unit, stale or replayed are refused and counted by reason; a signed bad one is answered with the field; never a crash', async () => {
    const to = { venue: 'venue-main', gateway: 'gw-main' };
    const topics = gatewayTopics(main.prefix, to.venue, to.gateway);
    const repliesTo = `${main.prefix}/replies/attacker`;
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'attacker' });
    const replies: Array<{ corr: string; body: string }> = [];
    const elsewhere: string[] = [];
    await client.subscribeAsync([repliesTo, 'attacker/#'], { qos: 1 });
    client.on('message', (topic, payload, packet) => {
      if (topic.startsWith('attacker/')) elsewhere.push(topic);
      else replies.push({ corr: String(packet.properties?.correlationData), body: JSON.stringify(unitDoc(payload, main.identity)) });
    });
    const request = (payload: string | Buffer, corr: string) =>
      client.publishAsync(topics.request, payload, { qos: 1, properties: { responseTopic: repliesTo, correlationData: Buffer.from(corr) } });
    const otherKey = new ControlSigner(Buffer.alloc(32, 0x66));
    for (const ack of [
      'not json', Buffer.alloc(100_000, 7), '{"v":3,"kind":"ack","venue":"venue-main","gateway":"gw-main","acks":["01ARZ3NDEKTSV4RRFFQ69G5FAV"]}',
      otherKey.sign({ kind: 'ack', ...to, acks: ['01ARZ3NDEKTSV4RRFFQ69G5FAV'] }), signedAck({ ...to, gateway: 'gw-other' }, ['01ARZ3NDEKTSV4RRFFQ69G5FAV']),
      TEST_BACKEND.sign({ kind: 'ack', ...to, acks: [42] }), signedAck(to, ['01ARZ3NDEKTSV4RRFFQ69G5FAV']),
    ]) {
      await client.publishAsync(topics.ack, ack, { qos: 1 });
    }
    await request('\xff\x00garbage', 'c1');
    await request('{"v":3,"kind":"request","venue":"venue-main","gateway":"gw-main","op":"status"}', 'unsigned');
    await request(signedRequest(to, repliesTo, { op: 'pull', from: 10, to: 5 }), 'c2');
    await request(signedRequest(to, repliesTo, { op: 'pull', from: 'noon', to: 5 }), 'c3');
    await request(Buffer.alloc(200_000, 0x20), 'c4');
    await request(signedRequest(to, repliesTo, { op: 'format-disk' }), 'c5');
    await request(signedRequest(to, 'attacker/x', { op: 'status' }), 'c7');
    await request(signedRequest(to, repliesTo, { op: 'status' }, { issuedAt: Date.now() - 3_600_000 }), 'c8');
    const once = signedRequest(to, repliesTo, { op: 'status' });
    await request(once, 'c9');
    await request(once, 'c9-again');
    await request(signedRequest(to, repliesTo, { op: 'status' }), 'c6');
    await waitFor('replies', () => replies.length >= 7);
    const byCorr = Object.fromEntries(replies.map((r) => [r.corr, r.body]));
    expect(Object.keys(byCorr).sort()).toEqual(['c2', 'c3', 'c5', 'c6', 'c8', 'c9', 'c9-again']);
    expect(byCorr.c2).toMatch(/"error":"to: must be after from"/);
    expect(byCorr.c3).toMatch(/"error":"from: /);
    expect(byCorr.c5).toMatch(/"error":"op: /);
    expect(byCorr.c8).toMatch(/"error":"issuedAt: .* is 3600 s behind this unit's clock; more than the 300 s accepted"/);
    expect(JSON.parse(byCorr.c9)).toMatchObject({ state: 'online' });
    expect(byCorr['c9-again']).toMatch(/"error":"nonce: .* was accepted already"/);
    type Counters = { uplink: { acksInvalid: number; requestsInvalid: number }; store: { acksUnknown: number }; control: { refused: Record<string, number> } };
    const status = JSON.parse(byCorr.c6) as { state: string; counters: Counters };
    expect(status.state).toBe('online');
    expect(status.counters.uplink.acksInvalid).toBe(6);
    expect(status.counters.store.acksUnknown).toBe(1);
    expect(status.counters.uplink.requestsInvalid).toBe(9);
    expect(status.counters.control.refused).toEqual({
      malformed: 4, unsigned: 2, unknownKey: 1, badSignature: 0, invalid: 4, wrongKind: 0, wrongGateway: 1, stale: 1, replayed: 1, badReplyTo: 1,
    });
    expect(elsewhere).toEqual([]); // nothing was answered outside the replies prefix
    // and the collector shrugs off garbage batches
    const before = main.collector.counters.batchesRejected;
    await client.publishAsync(`${main.prefix}/venue-main/gw-main/batch`, 'junk', { qos: 1 });
    await client.publishAsync(`${main.prefix}/venue-x/gw-main/batch`, Buffer.from([0xa0]), { qos: 1 });
    await waitFor('rejections', () => main.collector.counters.batchesRejected === before + 2);
    await client.endAsync();
    expect(daemon.proc.exitCode).toBeNull();
    expect(await stopGracefully(daemon)).toBe(0);
    expect(daemon.output()).toContain('daemon stopped');
    await main.collector.stop();
  });

  it('a broker outage mid-run loses nothing and duplicates nothing', async () => {
    const s = await scenario('outage', 202, 30);
    const d = spawnVgw(['run', '-c', s.config]);
    await waitFor('encounters flowing before the outage', () => collectorRows(s).length > 0, 30_000);
    await broker.stop();
    await waitFor('the daemon noticed the outage', () => /broker connection lost/.test(d.output()), 30_000);
    await broker.restart();
    await waitCrowdGone(s);
    await waitFor('all encounters after the outage', () => collectorRows(s).length >= s.truth.size);
    await waitGatewaySettled(s.config);
    expectExactlyTheTruth(s, collectorRows(s));
    expect(await stopGracefully(d)).toBe(0);
    expect(d.output()).toMatch(/broker connection lost/);
    await s.collector.stop();
  });

  it('SIGKILL mid-run: every stored encounter reaches the collector once, none overlap', async () => {
    // Short walk-bys arriving over 5 simulated minutes: some close before the kill, some arrive after.
    const s = await scenario('kill', 303, 80, undefined, { arrivalsPerMinute: 12, minDwellS: 30, maxDwellS: 120 });
    let d = spawnVgw(['run', '-c', s.config]);
    await waitFor('a few encounters committed before the kill', () => countSoFar(s.gatewayDb, 'SELECT count(*) FROM encounters') >= 3, 60_000);
    d.proc.kill('SIGKILL');
    await d.exited();
    const killedAt = Date.now();
    const atKill = new Database(s.gatewayDb, { readonly: true });
    expect(atKill.prepare('SELECT count(*) FROM encounters').pluck().get()).toBeGreaterThan(0); // a crash with data committed
    expect(atKill.pragma('integrity_check', { simple: true })).toBe('ok');
    atKill.close();
    await sleep(500);
    d = spawnVgw(['run', '-c', s.config]);
    // Its radio is up once it says so: Node's start takes seconds on a loaded machine.
    await waitFor('the restarted daemon', () => d.output().includes('daemon started'), 30_000);
    const restartedAt = Date.now();
    await waitCrowdGone(s);
    const gw = new Database(s.gatewayDb, { readonly: true });
    const stored = await waitFor('gateway outbox drained', () => {
      const pending = gw.prepare(
        `SELECT (SELECT count(*) FROM encounters WHERE id > coalesce((SELECT max(last_id) FROM batches), 0))
              + (SELECT count(*) FROM batches WHERE acked_at IS NULL)`,
      ).pluck().get() as number;
      return pending === 0 ? (gw.prepare('SELECT * FROM encounters ORDER BY id').all() as Array<{ id: number; temp_id: Buffer; count: number; first_seen: number; last_seen: number }>) : undefined;
    });
    gw.close();
    expect(await stopGracefully(d)).toBe(0);
    const rows = collectorRows(s);
    // The collector holds exactly what the gateway committed, each once.
    expect(rows.map((r) => r.id)).toEqual(stored.map((e) => e.id));
    for (const [i, r] of rows.entries()) {
      expect(r.temp_id.equals(stored[i].temp_id)).toBe(true);
      expect(r.count).toBe(stored[i].count);
    }
    // Encounters still open at the kill come back from the last checkpoint (0.25 s = 10 simulated
    // seconds before it at most): every phone heard well before the kill is at the collector.
    const killSim = s.crowd.anchor + (killedAt - s.crowd.anchor) * SPEED;
    const heardBefore = [...s.truth.values()].filter((t) => t.first < killSim - 30_000);
    expect(heardBefore.length).toBeGreaterThan(3);
    const collected = new Set(rows.map((r) => r.temp_id.toString('hex')));
    for (const t of heardBefore) expect(collected.has(t.rpi), 'a phone heard before the kill').toBe(true);
    // Sightings since the last checkpoint are lost (never acknowledged), but nothing is counted twice:
    // encounters of one RPI never overlap and never hold more adverts than the phone sent.
    const perRpi = new Map<string, typeof stored>();
    for (const e of stored) perRpi.set(e.temp_id.toString('hex'), [...(perRpi.get(e.temp_id.toString('hex')) ?? []), e]);
    for (const [rpi, list] of perRpi) {
      const truth = s.truth.get(rpi);
      expect(truth).toBeDefined();
      expect(list.reduce((n, e) => n + e.count, 0)).toBeLessThanOrEqual(truth!.count);
      list.sort((a, b) => a.first_seen - b.first_seen);
      for (let i = 1; i < list.length; i++) expect(list[i].first_seen).toBeGreaterThan(list[i - 1].last_seen);
    }
    // Phones that arrived after the restarted daemon was up are complete.
    const restartSim = s.crowd.anchor + (restartedAt - s.crowd.anchor) * SPEED;
    const later = [...s.truth.values()].filter((t) => t.first > restartSim);
    expect(later.length).toBeGreaterThan(0);
    for (const t of later) {
      const list = perRpi.get(t.rpi);
      expect(list, 'a phone that arrived after the restart').toHaveLength(1);
      expect(list![0].count).toBe(t.count);
    }
    await s.collector.stop();
  });

  it('two collectors in one MQTT 5 shared subscription split the batches; nothing lost or doubled', async () => {
    const s = await scenario('shared', 404, 48, 'collectors');
    const second = await startCollector(broker.url, 'collector-shared-2', s.prefix, join(dir, 'shared-collector.db'), [s.identity.record], 'collectors');
    const d = spawnVgw(['run', '-c', s.config]);
    await waitCrowdGone(s);
    await waitFor('all encounters via the shared subscription', () => collectorRows(s).length >= s.truth.size);
    await waitGatewaySettled(s.config);
    expectExactlyTheTruth(s, collectorRows(s));
    const gw = new Database(s.gatewayDb, { readonly: true });
    const batches = gw.prepare('SELECT count(*) FROM batches').pluck().get() as number;
    gw.close();
    expect(batches).toBeGreaterThan(3);
    // Each batch went to one collector of the group, and both took a share.
    expect(s.collector.counters.batchesStored + second.counters.batchesStored).toBe(batches);
    expect(s.collector.counters.batchesStored).toBeGreaterThan(0);
    expect(second.counters.batchesStored).toBeGreaterThan(0);
    expect(await stopGracefully(d)).toBe(0);
    await second.stop();
    await s.collector.stop();
  });
});
