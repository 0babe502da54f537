// Hostile MQTT against a running daemon and collector: floods of bogus acks, signed and not (one
// log line per kind per interval, not one per id), deeply nested requests, deflate bombs, request
// bursts. (A broker restart that lost every session is in uplink-timers.test.ts, on fake time.)
import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { encode as cborEncode } from 'cbor-x';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import type { Collector } from '../../collector/index.js';
import { contentHash, CONTROL_AAD, gatewayTopics, signCose } from '../../core/wire/index.js';
import { startCollector } from '../harness/collector.js';
import { provisionTestGateway, signedAck, signedRequest, TEST_BACKEND, unitDoc } from '../harness/identity.js';
import { sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { useLocalBroker } from '../harness/broker.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-hostile-');
const broker = useLocalBroker(dir);
const prefix = 'hostile/v3';
const replies = (name: string) => `${prefix}/replies/${name}`;

/**
 * Waits until the daemon answers a status request: only then is it subscribed to its ack and
 * request topics ("broker connected" comes before the SUBSCRIBE is through).
 */
async function waitSubscribed(g: { to: { venue: string; gateway: string }; topics: { request: string } }): Promise<void> {
  const probe = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: `probe-${process.pid}` });
  let answered = false;
  await probe.subscribeAsync(replies('probe'), { qos: 1 });
  probe.on('message', () => (answered = true));
  await waitFor('the daemon subscribed', async () => {
    await probe.publishAsync(g.topics.request, signedRequest(g.to, replies('probe'), { op: 'status' }), { qos: 1 });
    await sleep(200);
    return answered;
  });
  await probe.endAsync();
}

function gatewayConfig(name: string, extra: Record<string, unknown> = {}) {
  const identity = provisionTestGateway(dir, `gw-${name}`, 'venue-h');
  const config = writeJson(join(dir, `${name}.json`), {
    gateway: { id: `gw-${name}`, venue: 'venue-h' },
    secretsFile: identity.secretsFile,
    broker: { url: broker().url, reconnectS: 0.3, connectTimeoutS: 5 },
    topicPrefix: prefix,
    radio: { simulated: { seed: 5, phones: 0, arrivalsPerMinute: 30, minDwellS: 30, maxDwellS: 90, speed: 40, anchor: Date.now() } },
    clock: { syncCheck: 'assume-synced' },
    store: { path: join(dir, `${name}.db`), checkpointS: 0.25 },
    health: { controlSocket: join(dir, `${name}.sock`) },
    uplink: { batchMaxEncounters: 16, batchMaxAgeS: 0.5, resendInitialS: 1, resendMaxS: 300, statusIntervalS: 1 },
    log: { level: 'info' },
    ...extra,
  });
  return { identity, config, topics: gatewayTopics(prefix, 'venue-h', `gw-${name}`), to: { venue: 'venue-h', gateway: `gw-${name}` } };
}

describe('hostile MQTT', () => {
  it('200 signed acks of 1000 unknown ids each, and 200 unsigned: counted, and a few log lines instead of 200,000', async () => {
    const g = gatewayConfig('flood');
    const daemon = spawnVgw(['run', '-c', g.config]);
    await waitSubscribed(g);
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'flooder' });
    const ids = Array.from({ length: 1000 }, () => ulid());
    const ack = signedAck(g.to, ids);
    const unsigned = JSON.stringify({ v: 3, kind: 'ack', ...g.to, acks: ids });
    for (let i = 0; i < 200; i++) {
      await client.publishAsync(g.topics.ack, ack, { qos: 1 });
      await client.publishAsync(g.topics.ack, unsigned, { qos: 1 });
    }
    const answers: string[] = [];
    await client.subscribeAsync(replies('flooder'), { qos: 1 });
    client.on('message', (_t, payload) => answers.push(JSON.stringify(unitDoc(payload, g.identity))));
    await client.publishAsync(g.topics.request, signedRequest(g.to, replies('flooder'), { op: 'status' }), { qos: 1, properties: { correlationData: Buffer.from('s') } });
    await waitFor('status reply', () => answers.length > 0);
    type Counters = { store: { acksUnknown: number }; uplink: { acksReceived: number; acksInvalid: number }; control: { refused: { unsigned: number } } };
    const status = JSON.parse(answers[0]) as { counters: Counters };
    expect(status.counters.store.acksUnknown).toBe(200_000);
    expect(status.counters.uplink.acksReceived).toBe(200);
    expect(status.counters.uplink.acksInvalid).toBe(200);
    expect(status.counters.control.refused.unsigned).toBe(200);
    await client.endAsync();
    expect(await stopGracefully(daemon)).toBe(0);
    // each: the first line, then one summary with the count when the interval ends (or at stop)
    for (const [what, pattern] of [['ack for batches this gateway never cut', /"repeated":199/], ['ack refused: not acted on', /"repeated":199/]] as const) {
      const lines = daemon.output().split('\n').filter((l) => l.includes(what));
      expect(lines.length, what).toBeGreaterThanOrEqual(1);
      expect(lines.length, what).toBeLessThanOrEqual(3);
      expect(lines.some((l) => pattern.test(l)), what).toBe(true);
    }
  });

  it('deeply nested, huge and bursty requests, and a deflate bomb at the collector: refused or queued, never a crash', async () => {
    const g = gatewayConfig('nest');
    const collector: Collector = await startCollector(broker().url, 'collector-nest', prefix, join(dir, 'nest-collector.db'), [g.identity.record]);
    const daemon = spawnVgw(['run', '-c', g.config]);
    await waitSubscribed(g);
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'nester' });
    const answers = new Map<string, string[]>();
    await client.subscribeAsync(replies('nester'), { qos: 1 });
    client.on('message', (_t, payload, packet) => {
      const corr = String(packet.properties?.correlationData);
      // answers are signed by the gateway's key; pull parts are CBOR batches
      answers.set(corr, [...(answers.get(corr) ?? []), packet.properties?.contentType === 'application/cbor' ? `cbor:${payload.length}` : JSON.stringify(unitDoc(payload, g.identity))]);
    });
    const request = (payload: string | Buffer, corr: string) => client.publishAsync(g.topics.request, payload, { qos: 1, properties: { correlationData: Buffer.from(corr) } });
    // deeply nested, unsigned and signed: refused, and the unsigned ones not even answered
    await request('['.repeat(30_000) + ']'.repeat(30_000), 'deep-json');
    await request(Buffer.concat([Buffer.alloc(30_000, 0x81), Buffer.from([0x00])]), 'deep-cbor'); // 30,000 nested arrays
    await client.publishAsync(g.topics.ack, '{"v":3,"acks":' + '['.repeat(30_000) + ']'.repeat(30_000) + '}', { qos: 1 });
    // signed over the raw text: JSON.stringify itself cannot nest this deep
    const fields = JSON.stringify({ v: 3, kind: 'request', ...g.to, issuedAt: Date.now(), nonce: randomBytes(16).toString('base64url'), replyTo: replies('nester'), op: 'pull', to: 5 });
    const deepSigned = signCose(TEST_BACKEND.key, Buffer.from(`${fields.slice(0, -1)},"from":${'['.repeat(30_000)}${']'.repeat(30_000)}}`), CONTROL_AAD);
    await request(deepSigned, 'deep-signed');
    // a burst of pulls: a few are answered in turn, the rest told to ask again later
    const now = Date.now();
    await Promise.all(Array.from({ length: 40 }, (_, i) => request(signedRequest(g.to, replies('nester'), { op: 'pull', from: 0, to: now + 60_000 }), `pull-${i}`)));
    await waitFor('every signed request answered', () => answers.size >= 41, 60_000);
    expect(answers.get('deep-signed')![0]).toMatch(/"ok":false,"error":"from: /);
    expect(answers.has('deep-json') || answers.has('deep-cbor')).toBe(false);
    const pulls = Array.from({ length: 40 }, (_, i) => answers.get(`pull-${i}`)!);
    const busy = pulls.filter((r) => /ask again later/.test(r[0]));
    expect(busy.length).toBeGreaterThan(0);
    expect(pulls.length - busy.length).toBeGreaterThan(0);
    // protocol.md: at most 4 held at once, the one being answered included
    for (const r of busy) expect(r[0]).toContain('"error":"op: 4 pulls are being answered or waiting; ask again later"');
    // a deflate bomb on a batch topic: a few hundred bytes that inflate to gigabytes
    const bomb = deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    const before = collector.counters.batchesRejected;
    await client.publishAsync(g.topics.batch, Buffer.from(cborEncode({
      v: 3, kind: 'batch', id: ulid(), gw: 'gw-nest', venue: 'venue-h', life: ulid(), seq: 1, created: Date.now(), n: 1, enc: bomb, hash: contentHash(bomb),
    })), { qos: 1 });
    await waitFor('bomb rejected', () => collector.counters.batchesRejected === before + 1);
    // what the daemon counted of the unsigned ones
    await request(signedRequest(g.to, replies('nester'), { op: 'status' }), 'status');
    await waitFor('the status', () => answers.has('status'), 10_000);
    const refused = (JSON.parse(answers.get('status')![0]) as { counters: { control: { refused: Record<string, number> } } }).counters.control.refused;
    expect(refused).toMatchObject({ malformed: 2, unsigned: 1, invalid: 1 });
    await client.endAsync();
    expect(daemon.proc.exitCode).toBeNull();
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
  });
});
