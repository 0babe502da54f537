// The collector's timing with its time and timers passed in (a real Mosquitto and SQLite file,
// fake time): gateway statuses are written together once per statusFlushMs, the latest of each,
// and retention runs at start and then once per retentionIntervalMs, by the collector's clock.
// Its group commit, which needs no timer: what arrives while a transaction is in flight is the next
// transaction, whole, and acks follow each transaction.
import mqtt from 'mqtt';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { Collector, CollectorDb, DAY_MS } from '../../collector/index.js';
import { createLogger } from '../../core/log/index.js';
import { encodeBatch, gatewayTopics, signUnitMessage } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { testBroker } from '../harness/collector.js';
import { sampleEncounter } from '../harness/encounters.js';
import { FakeTimers } from '../harness/fake-timers.js';
import { waitFor } from '../harness/processes.js';
import { metric } from '../harness/metrics.js';
import { tempDir } from '../harness/tmp.js';
import { ackedIds, TEST_BACKEND, testGatewayKey } from '../harness/identity.js';

const dir = tempDir('vgw-collector-timers-');
const broker = useLocalBroker(dir);
const T = Date.UTC(2026, 11, 7, 12);

describe('the collector on fake time', () => {
  it('writes the statuses it heard once per statusFlushMs, the latest of each gateway', async () => {
    const timers = new FakeTimers(T);
    const prefix = 'ctimers/v2';
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'ctimers-collector'), prefix, database: join(dir, 'statuses.db'), registry: null, statusFlushMs: 2000, timers }, createLogger('silent'));
    await collector.start();
    const gw = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'ctimers-gw' });
    // signed, as a gateway signs its statuses (no registry here: the key is not checked)
    const status = (gateway: string, state: string, at: number) => signUnitMessage(testGatewayKey(1), { v: 3, gateway, venue: 'v', state, startedAt: new Date(T).toISOString(), at: new Date(at).toISOString(), counters: {} });
    await gw.publishAsync(gatewayTopics(prefix, 'v', 'gw-a').status, status('gw-a', 'online', T), { qos: 1 });
    await gw.publishAsync(gatewayTopics(prefix, 'v', 'gw-b').status, status('gw-b', 'online', T), { qos: 1 });
    await gw.publishAsync(gatewayTopics(prefix, 'v', 'gw-a').status, status('gw-a', 'offline', T), { qos: 1 });
    const heard = async () => metric(await collector.metrics.registry.metrics(), 'vgw_collector_status_messages_total');
    await waitFor('three statuses heard', async () => (await heard()) === 3, 10_000);
    expect(await collector.store.statuses()).toEqual([]); // none written before the flush
    timers.advance(1999);
    expect(await collector.store.statuses()).toEqual([]);
    timers.advance(1);
    const written = await waitFor('the flush written', async () => {
      const rows = await collector.store.statuses();
      return rows.length === 2 && rows;
    }, 10_000);
    expect(written.map((r) => [r.gateway, r.state, r.receivedAt]).sort()).toEqual([['gw-a', 'offline', T], ['gw-b', 'online', T]]);
    await gw.endAsync();
    await collector.stop();
  });

  it("runs retention at start and then every retentionIntervalMs, by the collector's own clock", async () => {
    const timers = new FakeTimers(T);
    const prefix = 'rtimers/v2';
    const collector = new Collector({
      control: TEST_BACKEND,
      broker: testBroker(broker().url, 'rtimers-collector'), prefix, database: join(dir, 'retention.db'), registry: null,
      retentionDays: 14, retentionIntervalMs: 3_600_000, timers,
    }, createLogger('silent'));
    await collector.start();
    // two days of encounters, 20 and 14.5 days before the collector's now
    const gw = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'rtimers-gw' });
    const life = ulid();
    const topic = gatewayTopics(prefix, 'v', 'gw').batch;
    const old = Math.floor((T - 20 * DAY_MS) / 1000) * 1000;
    const recent = Math.floor((T - 14.5 * DAY_MS) / 1000) * 1000;
    await gw.publishAsync(topic, encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw', venue: 'v', life, seq: 1, createdAt: old }, [sampleEncounter(1, old)]), { qos: 1 });
    await gw.publishAsync(topic, encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw', venue: 'v', life, seq: 2, createdAt: recent }, [sampleEncounter(2, recent)]), { qos: 1 });
    await waitFor('both batches stored', () => collector.counters.batchesStored === 2, 10_000);
    await gw.endAsync();
    const store = collector.store;
    if (!(store instanceof CollectorDb)) throw new Error('expected the SQLite store');
    const ids = async () => {
      const out: number[] = [];
      for await (const e of store.encounters()) out.push(e.id);
      return out;
    };
    expect(await ids()).toEqual([1, 2]); // the pass at start ran before they came
    // the first hourly pass: the day 20 days back has ended 14 days ago, the other not yet
    timers.advance(3_600_000);
    await waitFor('the old day purged', async () => (await ids()).length === 1, 10_000);
    expect(await ids()).toEqual([2]);
    // its day ended 14 days before T + 12 h: the pass at that hour removes it
    timers.advance(10 * 3_600_000);
    expect(await ids()).toEqual([2]);
    timers.advance(3_600_000);
    await waitFor('the second day purged', async () => (await ids()).length === 0, 10_000);
    expect(collector.counters.retentionDaysPurged).toBe(2);
    await collector.stop();
  });

  it('stores what arrives during a commit as the next group, in one transaction, and acks each group once it is durable', async () => {
    const timers = new FakeTimers(T);
    const prefix = 'gtimers/v2';
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'gtimers-collector'), prefix, database: join(dir, 'groups.db'), registry: null, timers }, createLogger('silent'));
    await collector.start();
    // The real store, with its commits counted and the first one held until the test lets it go.
    const store = collector.store;
    const realCommit = store.commit.bind(store);
    const groups: string[][] = [];
    let letFirstGo: () => void = () => undefined;
    const firstHeld = new Promise<void>((resolve) => (letFirstGo = resolve));
    store.commit = async (items) => {
      groups.push(items.map((i) => i.batch.id));
      if (groups.length === 1) await firstHeld;
      return realCommit(items);
    };
    const gw = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'gtimers-gw' });
    const topics = gatewayTopics(prefix, 'v', 'gw');
    const acks: string[][] = [];
    gw.on('message', (_topic, payload) => acks.push(ackedIds(payload)));
    await gw.subscribeAsync(topics.ack, { qos: 1 });
    const life = ulid();
    const batch = (seq: number) => {
      const id = ulid();
      return { id, bytes: encodeBatch({ kind: 'batch', id, gateway: 'gw', venue: 'v', life, seq, createdAt: T }, [sampleEncounter(seq, T - 60_000)]) };
    };
    const first = batch(1);
    await gw.publishAsync(topics.batch, first.bytes, { qos: 1 });
    await waitFor('the first commit under way', () => groups.length === 1, 10_000);
    const more = [2, 3, 4, 5].map(batch);
    for (const b of more) await gw.publishAsync(topics.batch, b.bytes, { qos: 1 });
    // A status after them on the same connection: the broker delivers in order, so once the
    // collector has heard it, it has heard the four batches too.
    await gw.publishAsync(topics.status, signUnitMessage(testGatewayKey(1), { v: 3, gateway: 'gw', venue: 'v', state: 'online', startedAt: new Date(T).toISOString(), at: new Date(T).toISOString(), counters: {} }), { qos: 1 });
    await waitFor('the status after them heard', async () => metric(await collector.metrics.registry.metrics(), 'vgw_collector_status_messages_total') === 1, 10_000);
    expect(groups).toHaveLength(1);
    expect(acks).toEqual([]); // nothing acked before it is durable
    letFirstGo();
    await waitFor('both groups acked', () => acks.flat().length === 5, 10_000);
    expect(groups).toEqual([[first.id], more.map((b) => b.id)]);
    expect(acks).toEqual([[first.id], more.map((b) => b.id)]);
    expect(collector.counters.batchesStored).toBe(5);
    await gw.endAsync();
    await collector.stop();
  });
});
