// The uplink's timing with its time and timers passed in (a real Mosquitto, a real SQLite store,
// fake time): re-sends come at the backoff protocol.md gives (resendInitialS doubling up to
// resendMaxS, ±20 % jitter), an ack frees its batch's place in flight at once, and a broker that
// lost every session gets what was in flight again at once, with its backoff started over.
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import { signingKeyFromSeed } from '../../core/trust/index.js';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClosedEncounter } from '../../core/encounters/index.js';
import { createLogger } from '../../core/log/index.js';
import { decodeBatch, gatewayTopics, trustedKey } from '../../core/wire/index.js';
import { Store } from '../../daemon/store/index.js';
import { Uplink, type UplinkOptions } from '../../daemon/uplink/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { testBroker } from '../harness/collector.js';
import { FakeTimers } from '../harness/fake-timers.js';
import { GateProxy } from '../harness/gate-proxy.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND, unitDoc } from '../harness/identity.js';

const dir = tempDir('vgw-uplink-');
const broker = useLocalBroker(dir);
const T = Date.UTC(2026, 11, 7, 9);
let n = 0;
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function encounter(i: number): ClosedEncounter {
  return {
    protocol: 0, tempId: Buffer.alloc(16, i), metadata: Buffer.alloc(4), firstSeen: T - 60_000, lastSeen: T - 1000, count: 10,
    rssiMin: -70, rssiMax: -60, rssiSum: -650, rssiCount: 10, bucketMs: [0, 59_000, 0, 0], clockSynced: true, closeReason: 'silence',
  };
}

/** A store holding `batches` one-encounter batches, an uplink on fake time, and a listener on its batch topic. */
async function setUp(batches: number, options: Partial<UplinkOptions>, url = broker().url) {
  const timers = new FakeTimers(T);
  const name = `gw-${n++}`;
  const store = new Store({
    path: join(dir, `${name}.db`), commitIntervalMs: 1000, retentionMs: 14 * 86_400_000, unackedMaxMs: 30 * 86_400_000, purgeBatchSize: 500,
    batchMaxEncounters: 1, batchMaxAgeMs: 30_000, maxPendingEncounters: 1000, now: () => timers.now(),
  });
  const prefix = 'timers/v2';
  const topics = gatewayTopics(prefix, 'venue', name);
  const listener = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: `listener-${name}` });
  const sent: string[] = [];
  listener.on('message', (topic, payload) => {
    if (topic === topics.batch) sent.push(decodeBatch(payload).id);
  });
  await listener.subscribeAsync(topics.batch, { qos: 1 });
  const uplink = new Uplink({
    broker: testBroker(url, `vgw-${name}`), prefix, venue: 'venue', gateway: name, maxInflightBatches: 8,
    resendInitialMs: 1000, resendMaxMs: 4000, statusIntervalMs: 3_600_000, maxRequestBytes: 4096, maxPullEncounters: 1000,
    batchMaxEncounters: 1, timers, trustedKeys: [trustedKey(TEST_BACKEND.key.publicKey)], requestMaxSkewMs: 300_000, signingKey: signingKeyFromSeed(randomBytes(32)), config: { version: 'sha256:timers', source: 'simulated' }, ...options,
  }, store, () => ({}) as never, createLogger('silent'));
  cleanup.push(async () => {
    await uplink.stop();
    await listener.endAsync();
    store.close();
  });
  uplink.start();
  await waitFor('the uplink connected', () => uplink.connected, 10_000);
  store.addEncounters(Array.from({ length: batches }, (_, i) => encounter(i + 1)));
  store.commit();
  expect(store.outbox()).toHaveLength(batches);
  /** A pull request from the tests' backend, answered on `<prefix>/replies/<to>`. */
  const pullRequest = (to: string) => TEST_BACKEND.sign({
    kind: 'request', venue: 'venue', gateway: name, issuedAt: timers.now(), nonce: randomBytes(16).toString('base64url'),
    replyTo: `${prefix}/replies/${to}`, op: 'pull', from: 0, to: T + 60_000,
  });
  return { timers, store, uplink, sent, topics, listener, name, pullRequest };
}

describe('the uplink on fake time', () => {
  it('re-sends at resendInitialS, then doubling up to resendMaxS, each at its jittered moment (here the earliest, 0.8×)', async () => {
    const { timers, uplink, sent } = await setUp(2, { random: () => 0 });
    await waitFor('both batches sent once', () => sent.length === 2, 10_000);
    expect(uplink.counters.batchesResent).toBe(0);
    // 0.8 × 1 s, 0.8 × 2 s, 0.8 × 4 s, then capped: 0.8 × 4 s
    for (const [gapMs, total] of [[800, 2], [1600, 4], [3200, 6], [3200, 8]] as const) {
      timers.advance(gapMs - 1);
      expect(uplink.counters.batchesResent).toBe(total - 2);
      timers.advance(1);
      expect(uplink.counters.batchesResent).toBe(total);
    }
    await waitFor('every re-send on the wire', () => sent.length === 2 + 8, 10_000);
  });

  it('each batch draws its own jitter: a fleet that lost its backend together does not re-send together', async () => {
    const draws = [0, 0.5, 0.999_999];
    let i = 0;
    const { timers, uplink, sent } = await setUp(3, { random: () => draws[i++ % draws.length] });
    await waitFor('three batches sent once', () => sent.length === 3, 10_000);
    // 0.8 s, 1.0 s and 1.2 s after the first send: one batch at a time
    for (const [at, resent] of [[799, 0], [800, 1], [999, 1], [1000, 2], [1199, 2], [1200, 3]] as const) {
      timers.advance(at - (timers.now() - T));
      expect(uplink.counters.batchesResent, `at ${at} ms`).toBe(resent);
    }
    await waitFor('every re-send on the wire', () => sent.length === 6, 10_000);
  });

  it('the latest jitter is 1.2× the backoff', async () => {
    const { timers, uplink, sent } = await setUp(1, { random: () => 0.999_999 });
    await waitFor('the batch sent once', () => sent.length === 1, 10_000);
    timers.advance(1199);
    expect(uplink.counters.batchesResent).toBe(0);
    timers.advance(1);
    expect(uplink.counters.batchesResent).toBe(1);
  });

  it('an ack frees its place in flight at once, without waiting for a timer', async () => {
    const { uplink, sent, topics, listener, store, timers, name } = await setUp(3, { maxInflightBatches: 1 });
    await waitFor('the first batch sent', () => sent.length === 1, 10_000);
    expect(uplink.inflightCount).toBe(1);
    const [first, second] = store.outbox();
    await listener.publishAsync(topics.ack, TEST_BACKEND.sign({ kind: 'ack', venue: 'venue', gateway: name, acks: [first.id] }), { qos: 1 });
    await waitFor('the second batch sent', () => sent.length === 2, 10_000);
    expect(sent).toEqual([first.id, second.id]);
    expect(timers.now()).toBe(T); // no fake time passed
    expect(uplink.counters.batchesResent).toBe(0);
  });

  it('answers one pull at a time, holds up to 4, refuses the rest by name; a reply never confirmed is not counted answered', async () => {
    const proxy = new GateProxy(broker().port);
    // three one-encounter batches, so an answer is three parts; no re-sends within the test
    const { uplink, topics, listener, timers, pullRequest } = await setUp(3, { resendInitialMs: 3_600_000, resendMaxMs: 3_600_000 }, await proxy.start());
    cleanup.unshift(() => proxy.stop()); // after the uplink has stopped
    const replies: Array<{ to: string; text: string }> = [];
    listener.on('message', (topic, payload, packet) => {
      if (!topic.startsWith('timers/v2/replies/')) return;
      // pull parts are batches; refusals are signed by the gateway
      const text = packet.properties?.contentType === 'application/cbor' ? `part ${decodeBatch(payload).part}${decodeBatch(payload).last ? ' last' : ''}` : JSON.stringify(unitDoc(payload));
      replies.push({ to: topic.slice('timers/v2/'.length), text });
    });
    await listener.subscribeAsync('timers/v2/replies/#', { qos: 1 });
    // Whatever the gateway sends waits at the proxy: the first pull's answer cannot be confirmed.
    proxy.hold();
    for (let i = 1; i <= 6; i++) {
      await listener.publishAsync(topics.request, pullRequest(String(i)), { qos: 1 });
    }
    await waitFor('the fifth and sixth refused', () => uplink.counters.requestsInvalid === 2, 10_000);
    expect(uplink.counters.requestsAnswered).toBe(0);
    proxy.release();
    await waitFor('four answers and two refusals', () => replies.filter((r) => r.text.endsWith('last') || r.text.includes('"ok":false')).length === 6, 10_000);
    // one whole answer after another, in the order asked
    const answers = replies.filter((r) => !r.text.includes('"ok":false'));
    expect(answers.map((r) => `${r.to} ${r.text}`)).toEqual([1, 2, 3, 4].flatMap((i) => [`replies/${i} part 0`, `replies/${i} part 1`, `replies/${i} part 2 last`]));
    for (const to of ['replies/5', 'replies/6']) {
      expect(replies.find((r) => r.to === to)?.text).toContain('op: 4 pulls are being answered or waiting; ask again later');
    }
    await waitFor('four counted answered', () => uplink.counters.requestsAnswered === 4, 10_000);

    // A reply the broker never confirms: after 10 s the pull is given up and not counted answered.
    proxy.hold();
    const before = timers.count;
    await listener.publishAsync(topics.request, pullRequest('7'), { qos: 1 });
    await waitFor("the three parts' deadlines set", () => timers.count === before + 3, 10_000);
    timers.advance(9_999);
    expect(timers.count).toBe(before + 3);
    timers.advance(1);
    expect(timers.count).toBe(before);
    proxy.release();
    await waitFor('the parts delivered late', () => replies.filter((r) => r.to === 'replies/7').length === 3, 10_000);
    expect(uplink.counters.requestsAnswered).toBe(4);
    expect(uplink.counters.pullEncountersSent).toBe(4 * 3);
  });

  // Last in this file: it restarts the file's broker.
  it('after a broker restart that lost every session, what was in flight goes again at once, and its backoff starts over', async () => {
    const { timers, uplink, sent } = await setUp(2, { random: () => 0 });
    await waitFor('both batches sent once', () => sent.length === 2, 10_000);
    timers.advance(800 + 1600 + 3200); // three re-sends: the next is 3.2 s away
    expect(uplink.counters.batchesResent).toBe(6);
    const published = uplink.counters.batchesPublished;
    await broker().stop();
    rmSync(join(broker().dir, 'mosquitto.db'), { force: true }); // its persisted sessions lost
    await broker().restart();
    await waitFor('the uplink reconnected', () => uplink.counters.connects === 2, 20_000);
    // no fake time has passed: only the reconnect can have sent them
    await waitFor('both in flight published again', () => uplink.counters.batchesPublished === published + 2, 10_000);
    expect(timers.now()).toBe(T + 800 + 1600 + 3200);
    // and their backoff restarted from resendInitialS (0.8 × 1 s), not from 3.2 s
    timers.advance(799);
    expect(uplink.counters.batchesPublished).toBe(published + 2);
    timers.advance(1);
    expect(uplink.counters.batchesPublished).toBe(published + 4);
  });
});
