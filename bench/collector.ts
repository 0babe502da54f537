// The collector's syncs per batch (issue 9): since an ack must mean durable, every commit is
// synced (synchronous = FULL); batches that arrive together share one commit. Two loads:
// one gateway that sends a batch only once the previous one is acknowledged (the worst case:
// one commit per batch), and a fleet whose gateways send at once (after a broker outage).
// The collector runs under strace in its own process; the broker and the gateways do not.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { ulid } from 'ulid';
import { LocalBroker } from '../simulators/index.js';
import { newIdentity, signBytes, signingKeyFromSeed } from '../core/trust/index.js';
import { encodeBatch, gatewayTopics, readCose } from '../core/wire/index.js';
import { toWire } from '../core/encounters/index.js';
import { countSyncs, straceSyncArgs } from './fsyncs.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-collector-'));
const broker = await LocalBroker.start(join(dir, 'broker'));
const report: Record<string, number> = {};
const ENCOUNTERS_PER_BATCH = 64;

interface Gateway {
  id: string;
  venue: string;
  life: string;
  seq: number;
  nextId: number;
  sign: (data: Buffer) => Buffer;
}

function batchOf(g: Gateway, prefix: string): { topic: string; payload: Buffer; id: string } {
  const id = ulid();
  const encounters = Array.from({ length: ENCOUNTERS_PER_BATCH }, () => {
    const n = g.nextId++;
    const tempId = Buffer.alloc(16);
    tempId.writeUInt32BE(n, 0);
    tempId.write(g.id.padEnd(12, '-').slice(0, 12), 4);
    const lastSeen = Date.now() - 60_000 + (n % 60) * 1000;
    return toWire({
      id: n, protocol: 0, tempId, metadata: Buffer.alloc(4), firstSeen: lastSeen - 90_000, lastSeen, count: 90,
      rssiMin: -85, rssiMax: -60, rssiSum: -90 * 72, rssiCount: 90, bucketMs: [10_000, 30_000, 40_000, 10_000], clockSynced: true,
    });
  });
  const payload = encodeBatch({ kind: 'batch', id, gateway: g.id, venue: g.venue, life: g.life, seq: g.seq++, createdAt: Date.now() }, encounters, g.sign);
  return { topic: gatewayTopics(prefix, g.venue, g.id).batch, payload, id };
}

/** Runs one load against a traced collector: returns its fsyncs and the batches it stored. */
async function run(name: string, gateways: number, batchesEach: number, together: boolean): Promise<{ fsyncs: number; batches: number; seconds: number }> {
  // (One gateway's batches/s is not reported: a round trip through the broker is dominated by
  // the network, ~90 ms here, not by the collector's commit, ~1.5 ms.)
  const prefix = `bench-${name}/v1`;
  const fleet: Gateway[] = [];
  const records = [];
  for (let i = 0; i < gateways; i++) {
    const { secrets, record } = newIdentity({ gateway: `gw-${name}-${i}`, venue: `venue-${i % 50}`, beacon: { exponent: 10, epochS: 0, txPowerDbm: -20 } });
    const key = signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex'));
    fleet.push({ id: record.gateway, venue: record.venue, life: ulid(), seq: 1, nextId: 1, sign: (data) => signBytes(key, data) });
    records.push(record);
  }
  const registry = join(dir, `${name}-registry.json`);
  writeFileSync(registry, JSON.stringify(records));
  const straceOut = join(dir, `${name}.strace`);
  const sink = spawn('strace', straceSyncArgs(straceOut, [process.execPath, join(here, 'collector-sink.js'), broker.url, prefix, join(dir, `${name}.db`), registry]),
    { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  sink.stdout.on('data', (d: Buffer) => (out += d.toString()));
  for (let waited = 0; !out.includes('ready'); waited += 50) {
    if (waited > 30_000) throw new Error(`bench/collector ${name}: the collector did not start:\n${out.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const client = mqtt.connect(broker.url, { protocolVersion: 5, clientId: `bench-fleet-${name}`, clean: true });
  await new Promise((r) => client.once('connect', r));
  const waiting = new Map<string, () => void>();
  client.on('message', (_topic, payload) => {
    // protocol 3: the ack is signed by the collector's backend key (COSE_Sign1); the ids are its JSON payload
    const read = readCose(payload);
    if (!read.ok) throw new Error(`bench/collector ${name}: an ack that is not COSE_Sign1: ${read.reason}`);
    for (const id of (JSON.parse(read.message.payload.toString()) as { acks: string[] }).acks) waiting.get(id)?.();
  });
  await client.subscribeAsync(`${prefix}/+/+/ack`, { qos: 1 });
  const acked = (id: string) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench/collector ${name}: no ack for batch ${id} in 60 s; the collector said:\n${out.slice(-3000)}`)), 60_000);
    waiting.set(id, () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const t0 = performance.now();
  let batches = 0;
  if (together) {
    const all: Array<Promise<void>> = [];
    for (let b = 0; b < batchesEach; b++) {
      for (const g of fleet) {
        const { topic, payload, id } = batchOf(g, prefix);
        all.push(acked(id));
        client.publish(topic, payload, { qos: 1 });
        batches++;
      }
    }
    await Promise.all(all);
  } else {
    for (const g of fleet) {
      for (let b = 0; b < batchesEach; b++) {
        const { topic, payload, id } = batchOf(g, prefix);
        const done = acked(id);
        client.publish(topic, payload, { qos: 1 });
        await done;
        batches++;
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await client.endAsync();
  const exited = new Promise((r) => sink.once('exit', r));
  sink.stdin.end();
  await exited;
  const counters = JSON.parse(out.trim().split('\n').pop()!) as { batchesStored: number };
  if (counters.batchesStored !== batches) throw new Error(`bench/collector ${name}: ${counters.batchesStored} of ${batches} batches stored`);
  return { fsyncs: countSyncs(straceOut), batches, seconds };
}

if (spawnSync('strace', ['-V']).status === 0) {
  const one = await run('one', 1, 400, false);
  report.collector_fsyncs_per_batch = +(one.fsyncs / one.batches).toFixed(3);
  const fleet = await run('fleet', 200, 10, true);
  report.collector_fsyncs_per_batch_fleet_burst = +(fleet.fsyncs / fleet.batches).toFixed(3);
  report.collector_batches_per_s_fleet_burst = Math.round(fleet.batches / fleet.seconds);
  report.collector_encounters_per_batch = ENCOUNTERS_PER_BATCH;
}
await broker.stop();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report) + '\n');
