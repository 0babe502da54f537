// What the backend can trust: batches signed with the gateway's Ed25519 key, checked by a real
// `vgw collect` against registration records, over a real Mosquitto. Forged, unsigned,
// replayed and out-of-sequence batches are refused with a reason; a real one is stored once.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { MqttClient } from 'mqtt';
import { ulid } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBroker } from '../../simulators/index.js';
import { PROTOCOL_EN } from '../../core/protocols/index.js';
import { newIdentity, signBytes, signingKeyFromSeed } from '../../core/trust/index.js';
import type { WireEncounter } from '../../core/encounters/index.js';
import { BatchHeader, encodeBatch, gatewayTopics } from '../../core/wire/index.js';
import { ackedIds, provisionTestGateway, testBackendKeyFile } from '../harness/identity.js';
import { runVgw, sleep, spawnVgw, Spawned, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-trust-');
const prefix = 'test-trust/v1';
let broker: LocalBroker;
let collector: Spawned;
let publisher: MqttClient;
const acks: string[] = [];
const alice = provisionTestGateway(dir, 'gw-alice', 'mall-01');
const mallory = newIdentity({ gateway: 'gw-alice', venue: 'mall-01', beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
const registryPath = join(dir, 'gateways.json');
const collectorDb = join(dir, 'collector.db');

function encounter(id: number): WireEncounter {
  return {
    id, protocol: PROTOCOL_EN, tempId: Buffer.alloc(16, id), metadata: Buffer.alloc(4, 7),
    firstSeen: 1_790_000_000_000 + id * 60_000, lastSeen: 1_790_000_000_000 + id * 60_000 + 30_000,
    count: 100, rssiMin: -80, rssiMax: -60, rssiMean: -70, attenuationS: [0, 10, 20, 0], clockSynced: true,
  };
}

const aliceKey = signingKeyFromSeed(Buffer.from(alice.secrets.signingKey, 'hex'));
const malloryKey = signingKeyFromSeed(Buffer.from(mallory.secrets.signingKey, 'hex'));
const header = (seq: number, gateway = 'gw-alice', venue = 'mall-01'): BatchHeader => ({ kind: 'batch', id: ulid(), gateway, venue, life: LIFE, seq, createdAt: Date.now() });
const LIFE = ulid();

function publish(payload: Buffer, gateway = 'gw-alice', venue = 'mall-01'): Promise<void> {
  return publisher.publishAsync(gatewayTopics(prefix, venue, gateway).batch, payload, { qos: 1 }).then(() => undefined);
}

function collectorLog(): Array<Record<string, unknown>> {
  return collector.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function refusal(batchId: string): Promise<string> {
  const line = await waitFor(`the collector's refusal of ${batchId}`, () => collectorLog().find((l) => l.batch === batchId && l.msg === 'batch refused'), 15_000);
  return String(line.reason);
}

function storedBatches(): string[] {
  const db = new Database(collectorDb, { readonly: true });
  try {
    return (db.prepare('SELECT id FROM batches ORDER BY seq').pluck().all() as string[]);
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
  writeJson(registryPath, [alice.record]);
  const config = writeJson(join(dir, 'collector.json'), {
    broker: { url: broker.url, reconnectS: 0.5 },
    topicPrefix: prefix,
    collector: { controlKeyFile: testBackendKeyFile(dir), database: collectorDb, registry: registryPath, http: { port: 0 } },
    log: { level: 'debug' },
  });
  collector = spawnVgw(['collect', '-c', config]);
  await waitFor('the collector to subscribe', () => collector.output().includes('collector connected'), 20_000);
  await sleep(300);
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'trust-publisher' });
  await publisher.subscribeAsync(`${prefix}/+/+/ack`, { qos: 1 });
  publisher.on('message', (_t, payload) => acks.push(...ackedIds(payload)));
});

afterAll(async () => {
  await publisher?.endAsync();
  if (collector) await stopGracefully(collector);
  await broker?.stop();
});

describe('signed batches at the collector', () => {
  const first = header(1);
  const firstPayload = encodeBatch(first, [encounter(1), encounter(2)], (d) => signBytes(aliceKey, d));

  it('stores and acknowledges a batch signed with the registered key', async () => {
    await publish(firstPayload);
    await waitFor('the ack', () => acks.includes(first.id), 15_000);
    expect(storedBatches()).toEqual([first.id]);
  });

  it('a replay of a stored batch is acknowledged again but never stored twice', async () => {
    await publish(firstPayload);
    await waitFor('the second ack', () => acks.filter((a) => a === first.id).length === 2);
    expect(storedBatches()).toEqual([first.id]);
    const db = new Database(collectorDb, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM encounters').pluck().get()).toBe(2);
    db.close();
    expect(collectorLog().some((l) => l.batch === first.id && String(l.msg).includes('already stored'))).toBe(true);
  });

  it('refuses an unsigned batch', async () => {
    const h = header(2);
    await publish(encodeBatch(h, [encounter(3)]));
    expect(await refusal(h.id)).toMatch(/unsigned batch: gateway "gw-alice" must sign every batch/);
  });

  it('refuses a batch forged with another key, naming the gateway', async () => {
    const h = header(2);
    await publish(encodeBatch(h, [encounter(3)], (d) => signBytes(malloryKey, d)));
    expect(await refusal(h.id)).toMatch(/signature does not verify with the registered key of "gw-alice": forged or altered/);
  });

  it('refuses a real signature moved onto altered content', async () => {
    const h = header(2);
    const honest = encodeBatch(h, [encounter(3)], (d) => signBytes(aliceKey, d));
    // Same header, signature lifted from the honest batch, an extra encounter smuggled in.
    const sig = (await import('cbor-x')).decode(honest).sig as Buffer;
    const altered = encodeBatch(h, [encounter(3), encounter(4)], () => sig);
    await publish(altered);
    expect(await refusal(h.id)).toMatch(/forged or altered/);
  });

  it('refuses a new batch that claims a sequence number already used (replayed sequence)', async () => {
    const h = header(1);
    await publish(encodeBatch(h, [encounter(9)], (d) => signBytes(aliceKey, d)));
    expect(await refusal(h.id)).toMatch(new RegExp(`seq 1 is already held by batch ${first.id}: replayed or forged sequence`));
  });

  it('every refusal is one "batch refused" line with its code and reason, decode-stage refusals included (protocol.md)', async () => {
    const h = header(3);
    const good = encodeBatch(h, [encounter(5)], (d) => signBytes(aliceKey, d));
    const { decode, encode } = await import('cbor-x');
    const broken = decode(good) as Record<string, unknown>;
    broken.hash = Buffer.alloc(32);
    await publish(encode(broken));
    const malformed = await waitFor('the malformed refusal', () => collectorLog().find((l) => l.msg === 'batch refused' && l.code === 'malformed'), 15_000);
    expect(String(malformed.reason)).toMatch(/^hash: /);
    await publish(good, 'gw-bob');
    const line = await waitFor('the wrong-topic refusal', () => collectorLog().find((l) => l.batch === h.id && l.msg === 'batch refused'), 15_000);
    expect(line.code).toBe('wrong_topic');
    expect(line.reason).toBe("gw: batch names mall-01/gw-alice but came on mall-01/gw-bob's topic");
    for (const l of collectorLog().filter((x) => x.msg === 'batch refused')) {
      expect(['malformed', 'wrong_topic', 'unregistered', 'wrong_venue', 'unsigned', 'bad_signature', 'out_of_sequence']).toContain(l.code);
    }
    expect(collectorLog().some((l) => l.msg === 'batch rejected')).toBe(false);
  });

  it('refuses gateways that are not registered, and a registered gateway at another venue', async () => {
    const stranger = header(1, 'gw-stranger');
    await publish(encodeBatch(stranger, [encounter(5)], (d) => signBytes(malloryKey, d)), 'gw-stranger');
    expect(await refusal(stranger.id)).toMatch(/gateway "gw-stranger" is not registered: add its registration record/);
    const moved = header(3, 'gw-alice', 'market-02');
    await publish(encodeBatch(moved, [encounter(6)], (d) => signBytes(aliceKey, d)), 'gw-alice', 'market-02');
    expect(await refusal(moved.id)).toMatch(/registered at venue "mall-01", not "market-02"/);
  });

  it('accepts a newly registered gateway without a restart (the registry is re-read)', async () => {
    const bob = provisionTestGateway(dir, 'gw-bob', 'mall-01');
    await sleep(20); // a distinct mtime
    writeJson(registryPath, [alice.record, bob.record]);
    const h = header(1, 'gw-bob');
    await publish(encodeBatch(h, [encounter(1)], (d) => signBytes(signingKeyFromSeed(Buffer.from(bob.secrets.signingKey, 'hex')), d)), 'gw-bob');
    await waitFor('bob acknowledged', () => acks.includes(h.id));
    // nothing refused above was stored
    expect(storedBatches().sort()).toEqual([first.id, h.id].sort());
  });
});

describe('the gateway side', () => {
  it('`vgw run` refuses a secrets file others can read, and says how to fix it', async () => {
    const loose = join(dir, 'loose-secrets.json');
    writeFileSync(loose, JSON.stringify(alice.secrets));
    chmodSync(loose, 0o644);
    const config = writeJson(join(dir, 'loose.json'), { gateway: { id: 'gw-alice', venue: 'mall-01' }, secretsFile: loose, store: { path: join(dir, 'loose.db') } });
    const r = await runVgw(['run', '-c', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/secrets file .*loose-secrets.json is readable by others \(mode 644\): run `chmod 600/);
  });

  it('`vgw run` without a secrets file says to provision the unit', async () => {
    const config = writeJson(join(dir, 'nosecrets.json'), { gateway: { id: 'gw-alice', venue: 'mall-01' }, store: { path: join(dir, 'nosecrets.db') } });
    const r = await runVgw(['run', '-c', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/secretsFile: required by `vgw run`.*`vgw provision`/);
  });

  it('`vgw collect` without a registry refuses to start unless told it is a development setup', async () => {
    const config = writeJson(join(dir, 'noregistry.json'), { collector: { controlKeyFile: testBackendKeyFile(dir), database: join(dir, 'x.db') } });
    const r = await runVgw(['collect', '-c', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/collector\.registry: required/);
  });
});
