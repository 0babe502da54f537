// The red team's three attacks of issue 26, on a plain broker (no ACL: what a misconfigured or
// compromised broker, or a leaked backend credential, amounts to), against the real daemon and
// collector. Each attack is made as the red team made it, and as it would be made against
// protocol 3 (replaying what the backend signed); each must lose nothing, leak nothing and
// change nothing, and the unit's status must say what it refused.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import { signingKeyFromSeed } from '../../core/trust/index.js';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { Collector, GatewayRegistry } from '../../collector/index.js';
import { issueTempIds, newUid } from '../../core/bluetrace/index.js';
import { createLogger } from '../../core/log/index.js';
import { ControlSigner, decodeBatch, gatewayTopics, signUnitMessage, trustedKey } from '../../core/wire/index.js';
import { TempIdSupply } from '../../daemon/bluetrace/tempid-supply.js';
import { Uplink } from '../../daemon/uplink/index.js';
import { MemoryOutbox } from '../../simulators/memory-outbox.js';
import { useLocalBroker } from '../harness/broker.js';
import { collectorSqlite, testBroker } from '../harness/collector.js';
import { countSoFar } from '../harness/gateway-db.js';
import { metric } from '../harness/metrics.js';
import { provisionTestGateway, signedRequest, TEST_BACKEND, unitDoc } from '../harness/identity.js';
import { spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-redteam-');
const broker = useLocalBroker(dir);
const prefix = 'vgw/v3';
const attackerKey = new ControlSigner(Buffer.alloc(32, 0xa7));

type Counters = { control: { refused: Record<string, number> }; uplink: { acksInvalid: number; requestsInvalid: number } };

/** A unit on the simulated radio: 40 phones in all, or (phones: 0) a crowd that keeps arriving. */
function unitConfig(name: string, phones = 40) {
  const identity = provisionTestGateway(dir, `gw-${name}`, `venue-${name}`);
  const db = join(dir, `${name}.db`);
  const config = writeJson(join(dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: `venue-${name}` },
    secretsFile: identity.secretsFile,
    broker: { url: broker().url, reconnectS: 0.3 },
    topicPrefix: prefix,
    radio: { simulated: { seed: 11, phones, arrivalsPerMinute: 120, minDwellS: 10, maxDwellS: 40, speed: 40, anchor: Date.now() + 500 } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: db, checkpointS: 0.25 },
    health: { controlSocket: join(dir, `${name}.sock`) },
    uplink: { batchMaxEncounters: 4, batchMaxAgeS: 0.5, resendInitialS: 1, resendMaxS: 2, statusIntervalS: 1 },
  });
  return { identity, db, config, to: { venue: `venue-${name}`, gateway: `gw-${name}` }, topics: gatewayTopics(prefix, `venue-${name}`, `gw-${name}`) };
}

/** The unit's latest retained status counters. */
async function statusCounters(topic: string): Promise<Counters> {
  const reader = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: `status-${ulid()}` });
  try {
    let doc: { state: string; counters?: Counters } | null = null;
    reader.on('message', (_t, payload) => (doc = unitDoc(payload)));
    await reader.subscribeAsync(topic, { qos: 1 });
    return await waitFor('a retained online status', () => (doc !== null && doc.state === 'online' ? doc.counters : undefined), 10_000);
  } finally {
    await reader.endAsync();
  }
}

describe('the red team on a plain broker (protocol 3)', () => {
  it('forged acks for every batch of a unit the backend does not store yet: none is forgotten; once registered, all arrive', async () => {
    // a crowd that keeps coming: batches keep closing until 8 are in flight unacknowledged (the cap)
    const u = unitConfig('acks', 0);
    const registryFile = writeJson(join(dir, 'acks-registry.json'), []);
    const collector = new Collector(
      { broker: testBroker(broker().url, 'redteam-collector'), prefix, database: join(dir, 'acks-collector.db'), registry: new GatewayRegistry(registryFile), control: TEST_BACKEND },
      createLogger('silent'),
    );
    await collector.start();
    // The attacker hears every batch and acks it at once: unsigned, signed by its own key, and
    // with a backend-signed ack of another unit replayed onto this unit's topic.
    const attacker = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'ack-forger' });
    const forged = new Set<string>();
    const otherUnitsAck = TEST_BACKEND.sign({ kind: 'ack', venue: 'venue-other', gateway: 'gw-other', acks: [ulid()] });
    const forge = (_t: string, payload: Buffer) => {
      const id = decodeBatch(payload).id;
      forged.add(id);
      void attacker.publishAsync(u.topics.ack, JSON.stringify({ v: 3, kind: 'ack', ...u.to, acks: [id] }), { qos: 1 });
      void attacker.publishAsync(u.topics.ack, attackerKey.sign({ kind: 'ack', ...u.to, acks: [id] }), { qos: 1 });
      void attacker.publishAsync(u.topics.ack, otherUnitsAck, { qos: 1 });
    };
    attacker.on('message', forge);
    await attacker.subscribeAsync(u.topics.batch, { qos: 1 });
    const daemon = spawnVgw(['run', '-c', u.config]);
    await waitFor('forged acks for 8 batches', () => forged.size >= 8, 60_000).catch((err: Error) => {
      throw new Error(`${err.message} (${forged.size} so far); the unit said:\n${daemon.output().slice(-3000)}`);
    });
    const counters = await waitFor('the forgeries counted', async () => {
      const c = await statusCounters(u.topics.status);
      return c.control.refused.unsigned >= 8 && c.control.refused.unknownKey >= 8 && c.control.refused.wrongGateway >= 8 ? c : undefined;
    }, 20_000);
    expect(counters.uplink.acksInvalid).toBeGreaterThanOrEqual(24);
    // nothing forgotten: every batch still waits for the backend's word
    expect(countSoFar(u.db, 'SELECT count(*) FROM batches WHERE acked_at IS NOT NULL')).toBe(0);
    expect(collector.counters.batchesStored).toBe(0);
    // the unit is registered: every batch the attacker acked reaches the collector, and only then
    // does the backend's own ack make the unit forget it
    writeJson(registryFile, [u.identity.record]);
    const attacked = [...forged];
    const inList = attacked.map(() => '?').join();
    await waitFor('every attacked batch stored, then acknowledged by the backend', () => {
      const gw = new Database(u.db, { readonly: true });
      try {
        return gw.prepare(`SELECT count(*) FROM batches WHERE acked_at IS NOT NULL AND id IN (${inList})`).pluck().get(...attacked) === attacked.length;
      } finally {
        gw.close();
      }
    }, 60_000);
    const atCollector = collectorSqlite(collector).prepare(`SELECT count(*) FROM batches WHERE id IN (${inList})`).pluck().get(...attacked);
    expect(atCollector).toBe(attacked.length);
    attacker.off('message', forge); // the unit keeps publishing: no forgery may start once the client is closing
    await attacker.endAsync();
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
  });

  it('a pull with the attacker\'s response topic, and the backend\'s own signed pull replayed with it: the attacker gets nothing', async () => {
    const u = unitConfig('pull');
    const daemon = spawnVgw(['run', '-c', u.config]);
    await waitFor('encounters stored on the unit', () => countSoFar(u.db, 'SELECT count(*) FROM encounters') >= 10, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}; the unit's last output: ${daemon.output().slice(-3000)}`);
    });
    const attacker = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'puller' });
    const loot: string[] = [];
    const backendReplies: string[] = [];
    attacker.on('message', (topic) => (topic.startsWith('loot/') ? loot : backendReplies).push(topic));
    await attacker.subscribeAsync(['loot/#', `${prefix}/replies/backend-tool`], { qos: 1 });
    const pull = { op: 'pull', from: 0, to: Date.now() + 3_600_000 };
    // as the red team sent it: 60 bytes of JSON with its own response topic
    await attacker.publishAsync(u.topics.request, JSON.stringify({ v: 3, ...pull }), { qos: 1, properties: { responseTopic: 'loot/a' } });
    // signed by a key of its own, naming its topic
    await attacker.publishAsync(u.topics.request, attackerKey.sign({ kind: 'request', ...u.to, issuedAt: Date.now(), nonce: randomBytes(16).toString('base64url'), replyTo: 'loot/b', ...pull }), { qos: 1 });
    // the backend's own request: answered, on the backend's topic only
    const genuine = signedRequest(u.to, `${prefix}/replies/backend-tool`, pull);
    await attacker.publishAsync(u.topics.request, genuine, { qos: 1 });
    await waitFor('the genuine pull answered', () => backendReplies.length > 0, 20_000);
    // captured and replayed with the attacker's response topic: the topic is inside the signature, and the nonce is spent
    await attacker.publishAsync(u.topics.request, genuine, { qos: 1, properties: { responseTopic: 'loot/c' } });
    // and a backend-signed request whose replyTo is outside the replies prefix (a compromised tool)
    await attacker.publishAsync(u.topics.request, signedRequest(u.to, 'loot/d', pull), { qos: 1 });
    const counters = await waitFor('the refusals counted', async () => {
      const c = await statusCounters(u.topics.status);
      const r = c.control.refused;
      return r.unsigned >= 1 && r.unknownKey >= 1 && r.replayed >= 1 && r.badReplyTo >= 1 ? c : undefined;
    }, 20_000);
    expect(counters.uplink.requestsInvalid).toBe(4);
    expect(loot).toEqual([]);
    await attacker.endAsync();
    expect(await stopGracefully(daemon)).toBe(0);
  });

  it("a forged status on the unit's topic, unsigned or signed by another key: the fleet view keeps what the unit said", async () => {
    const u = unitConfig('status');
    const collector = new Collector(
      { broker: testBroker(broker().url, 'status-collector'), prefix, database: join(dir, 'status-collector.db'), registry: new GatewayRegistry(undefined, [u.identity.record]), control: TEST_BACKEND, statusFlushMs: 200 },
      createLogger('silent'),
    );
    await collector.start();
    const daemon = spawnVgw(['run', '-c', u.config]);
    const row = async () => (await collector.store.statuses()).find((r) => r.gateway === u.to.gateway);
    await waitFor('the unit online in the fleet view', async () => (await row())?.state === 'online', 20_000);
    const attacker = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'status-forger' });
    const dead = { v: 3, ...u.to, startedAt: new Date().toISOString(), state: 'offline', reason: 'stopped', at: new Date().toISOString() };
    const refusedBefore = collector.counters.unitMessagesRefused;
    // as a red team would: plain JSON, then signed by a key of its own; retained, as statuses are
    await attacker.publishAsync(u.topics.status, JSON.stringify(dead), { qos: 1, retain: true });
    await attacker.publishAsync(u.topics.status, signUnitMessage(signingKeyFromSeed(Buffer.alloc(32, 0xa7)), dead), { qos: 1, retain: true });
    await waitFor('both forgeries refused', () => collector.counters.unitMessagesRefused === refusedBefore + 2, 10_000);
    const metrics = await collector.metrics.registry.metrics();
    expect(metric(metrics, 'vgw_collector_unit_message_refusals_total{reason="unsigned"}')).toBeGreaterThanOrEqual(1);
    expect(metric(metrics, 'vgw_collector_unit_message_refusals_total{reason="bad_signature"}')).toBeGreaterThanOrEqual(1);
    // the unit's next status is what the fleet view shows; the forged "stopped" never was
    const statusesHeard = async () => metric(await collector.metrics.registry.metrics(), 'vgw_collector_status_messages_total') ?? 0;
    const statusesBefore = await statusesHeard();
    await waitFor('the unit\'s next status', async () => (await statusesHeard()) > statusesBefore, 10_000);
    expect(await row()).toMatchObject({ state: 'online', reason: null });
    await attacker.endAsync();
    expect(await stopGracefully(daemon)).toBe(0);
    await waitFor('the genuine stop shown', async () => (await row())?.reason === 'stopped', 10_000);
    await collector.stop();
  });

  it("another venue's signed temp IDs relayed to this unit, and random ones valid until 2038: none is taken", async () => {
    const venueKey = randomBytes(32);
    const here = { venue: 'venue-a', gateway: 'gw-a' };
    const timers = { now: () => Date.now() };
    const outbox = new MemoryOutbox({ batchMaxEncounters: 8, batchMaxAgeMs: 1000, commitIntervalMs: 1000 }, Date.now(), 0);
    const uplink = new Uplink({
      broker: testBroker(broker().url, 'vgw-gw-a'), prefix, venue: here.venue, gateway: here.gateway, maxInflightBatches: 8, resendInitialMs: 1000, resendMaxMs: 4000,
      statusIntervalMs: 3_600_000, maxRequestBytes: 65_536, maxPullEncounters: 1000, batchMaxEncounters: 8, trustedKeys: [trustedKey(TEST_BACKEND.key.publicKey)], requestMaxSkewMs: 300_000,
      signingKey: signingKeyFromSeed(randomBytes(32)), config: { version: 'sha256:redteam', source: 'simulated' },
    }, outbox, () => ({}) as never, createLogger('silent'));
    const asked: string[] = [];
    const supply = new TempIdSupply({
      path: join(dir, 'tempids-a.json'), lowWater: 16, retryMs: 60_000, clockTrusted: () => true,
      request: (id, count) => uplink.requestTempIds(id, count) && asked.push(id) > 0,
    }, createLogger('silent'));
    uplink.onTempIdsAnswer((r) => supply.accept(r));
    uplink.start();
    await waitFor('the uplink connected', () => uplink.connected, 10_000);
    supply.start();
    await waitFor('the unit asked for temp IDs', () => asked.length > 0, 10_000);
    const id = asked[0];
    const topic = gatewayTopics(prefix, here.venue, here.gateway).tempIds;
    const attacker = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'tempid-forger' });
    const nowS = Math.floor(timers.now() / 1000);
    const venueB = issueTempIds(venueKey, newUid(), nowS);
    // venue B's answer, genuinely signed by the backend, relayed onto A's topic with A's request id
    await attacker.publishAsync(topic, TEST_BACKEND.sign({ kind: 'tempIds', venue: 'venue-b', gateway: 'gw-b', id, tempIds: venueB, refreshAt: nowS + 43_200 }), { qos: 1 });
    // random IDs valid until 2038, unsigned and signed by the attacker's key
    const forever = [{ tempId: randomBytes(61).toString('base64'), start: nowS, expiry: 2 ** 31 - 1 }];
    await attacker.publishAsync(topic, JSON.stringify({ v: 3, kind: 'tempIds', ...here, id, tempIds: forever, refreshAt: 2 ** 31 - 1 }), { qos: 1 });
    await attacker.publishAsync(topic, attackerKey.sign({ kind: 'tempIds', ...here, id, tempIds: forever, refreshAt: 2 ** 31 - 1 }), { qos: 1 });
    await waitFor('three answers refused', () => {
      const r = uplink.control.counters.refused;
      return r.wrongGateway === 1 && r.unsigned === 1 && r.unknownKey === 1;
    }, 10_000);
    expect(supply.status()).toMatchObject({ responses: 0, left: 0, state: 'out' });
    expect(supply.current()).toBeNull();
    // the backend's genuine answer, even if signed, is refused when it makes no sense
    await attacker.publishAsync(topic, TEST_BACKEND.sign({ kind: 'tempIds', ...here, id, tempIds: forever, refreshAt: nowS + 43_200 }), { qos: 1 });
    await waitFor('the senseless answer refused', () => supply.status().refused === 1, 10_000);
    expect(supply.status()).toMatchObject({ responses: 0, left: 0, lastError: expect.stringMatching(/^answer refused: tempIds\.0\.expiry/) });
    // then the right one is taken
    const mine = issueTempIds(venueKey, newUid(), nowS);
    supply.maybeRequest();
    expect(asked).toHaveLength(2);
    await attacker.publishAsync(topic, TEST_BACKEND.sign({ kind: 'tempIds', ...here, id: asked[1], tempIds: mine, refreshAt: nowS + 43_200 }), { qos: 1 });
    await waitFor('the genuine answer taken', () => supply.status().responses === 1, 10_000);
    expect(supply.current()).toBe(mine[0].tempId);
    await attacker.endAsync();
    supply.stop();
    await uplink.stop();
  });
});
