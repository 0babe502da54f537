// Hostile MQTT against a running daemon and collector: floods of bogus acks (one log line per
// kind per interval, not one per id), deeply nested requests, deflate bombs, request bursts. (A
// broker restart that lost every session is in uplink-timers.test.ts, on fake time.)
import { deflateRawSync } from 'node:zlib';
import { encode as cborEncode } from 'cbor-x';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import type { Collector } from '../../collector/index.js';
import { contentHash, gatewayTopics } from '../../core/wire/index.js';
import { startCollector } from '../harness/collector.js';
import { provisionTestGateway } from '../harness/identity.js';
import { sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { useLocalBroker } from '../harness/broker.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-hostile-');
const broker = useLocalBroker(dir);
const prefix = 'hostile/v1';

/**
 * Waits until the daemon answers a status request: only then is it subscribed to its ack and
 * request topics ("broker connected" comes before the SUBSCRIBE is through).
 */
async function waitSubscribed(requestTopic: string): Promise<void> {
  const probe = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: `probe-${process.pid}` });
  let answered = false;
  await probe.subscribeAsync('replies/probe', { qos: 1 });
  probe.on('message', () => (answered = true));
  await waitFor('the daemon subscribed', async () => {
    await probe.publishAsync(requestTopic, '{"v":2,"op":"status"}', { qos: 1, properties: { responseTopic: 'replies/probe' } });
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
  return { identity, config, topics: gatewayTopics(prefix, 'venue-h', `gw-${name}`) };
}

describe('hostile MQTT', () => {
  it('200 acks of 1000 unknown ids each: counted, and a few log lines instead of 200,000', async () => {
    const g = gatewayConfig('flood');
    const daemon = spawnVgw(['run', '-c', g.config]);
    await waitSubscribed(g.topics.request);
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'flooder' });
    const ack = JSON.stringify({ v: 2, acks: Array.from({ length: 1000 }, () => ulid()) });
    for (let i = 0; i < 200; i++) await client.publishAsync(g.topics.ack, ack, { qos: 1 });
    const replies: string[] = [];
    await client.subscribeAsync('replies/flooder', { qos: 1 });
    client.on('message', (_t, payload) => replies.push(payload.toString()));
    await client.publishAsync(g.topics.request, '{"v":2,"op":"status"}', { qos: 1, properties: { responseTopic: 'replies/flooder', correlationData: Buffer.from('s') } });
    await waitFor('status reply', () => replies.length > 0);
    const status = JSON.parse(replies[0]) as { counters: { store: { acksUnknown: number }; uplink: { acksReceived: number } } };
    expect(status.counters.store.acksUnknown).toBe(200_000);
    expect(status.counters.uplink.acksReceived).toBe(200);
    await client.endAsync();
    expect(await stopGracefully(daemon)).toBe(0);
    const lines = daemon.output().split('\n').filter((l) => l.includes('ack for batches this gateway never cut'));
    // the first one, then one summary with the count when the interval ends (or at stop)
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines.some((l) => /"repeated":199/.test(l))).toBe(true);
  });

  it('deeply nested, huge and bursty requests, and a deflate bomb at the collector: refused or queued, never a crash', async () => {
    const g = gatewayConfig('nest');
    const collector: Collector = await startCollector(broker().url, 'collector-nest', prefix, join(dir, 'nest-collector.db'), [g.identity.record]);
    const daemon = spawnVgw(['run', '-c', g.config]);
    await waitSubscribed(g.topics.request);
    const client = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'nester' });
    const replies = new Map<string, string[]>();
    await client.subscribeAsync('replies/nester', { qos: 1 });
    client.on('message', (_t, payload, packet) => {
      const corr = String(packet.properties?.correlationData);
      replies.set(corr, [...(replies.get(corr) ?? []), packet.properties?.contentType === 'application/json' ? payload.toString() : `cbor:${payload.length}`]);
    });
    const request = (payload: string | Buffer, corr: string) =>
      client.publishAsync(g.topics.request, payload, { qos: 1, properties: { responseTopic: 'replies/nester', correlationData: Buffer.from(corr) } });
    await request('['.repeat(30_000) + ']'.repeat(30_000), 'deep-json');
    await request(Buffer.concat([Buffer.alloc(30_000, 0x81), Buffer.from([0x00])]), 'deep-cbor'); // 30,000 nested arrays
    await client.publishAsync(g.topics.ack, '{"v":2,"acks":' + '['.repeat(30_000) + ']'.repeat(30_000) + '}', { qos: 1 });
    // a burst of pulls: a few are answered in turn, the rest told to ask again later
    const now = Date.now();
    await Promise.all(Array.from({ length: 40 }, (_, i) => request(JSON.stringify({ v: 2, op: 'pull', from: 0, to: now + 60_000 }), `pull-${i}`)));
    await waitFor('every request answered', () => replies.size >= 42, 60_000);
    expect(replies.get('deep-json')![0]).toMatch(/"ok":false/);
    expect(replies.get('deep-cbor')![0]).toMatch(/"ok":false/);
    const pulls = Array.from({ length: 40 }, (_, i) => replies.get(`pull-${i}`)!);
    const busy = pulls.filter((r) => /ask again later/.test(r[0]));
    expect(busy.length).toBeGreaterThan(0);
    expect(pulls.length - busy.length).toBeGreaterThan(0);
    // protocol.md: at most 4 held at once, the one being answered included
    for (const r of busy) expect(r[0]).toContain('"error":"op: 4 pulls are being answered or waiting; ask again later"');
    // a deflate bomb on a batch topic: a few hundred bytes that inflate to gigabytes
    const bomb = deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    const before = collector.counters.batchesRejected;
    await client.publishAsync(g.topics.batch, Buffer.from(cborEncode({
      v: 2, kind: 'batch', id: ulid(), gw: 'gw-nest', venue: 'venue-h', life: ulid(), seq: 1, created: Date.now(), n: 1, enc: bomb, hash: contentHash(bomb),
    })), { qos: 1 });
    await waitFor('bomb rejected', () => collector.counters.batchesRejected === before + 1);
    await client.endAsync();
    expect(daemon.proc.exitCode).toBeNull();
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
  });
});
