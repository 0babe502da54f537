// `make bench`: measures the figures issue #2 names and writes bench/report.json (flat JSON).
// Figures come from running the real code paths; nothing here is asserted, only reported.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ulid } from 'ulid';
import { closeAll, ClosedEncounter, createAggregator, observe, sweep } from '../daemon/encounters/index.js';
import { decodeAdvertisement, newDropCounters } from '../daemon/protocols/index.js';
import { Crowd } from '../daemon/radio/index.js';
import { Store } from '../daemon/store/index.js';
import { encodeBatch, toWire } from '../daemon/uplink/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const report: Record<string, number> = {};

function ioWriteBytes(): { write_bytes: number; wchar: number } {
  const io = readFileSync('/proc/self/io', 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(io)?.[1] ?? 0);
  return { write_bytes: get('write_bytes'), wchar: get('wchar') };
}

const aggregatorOptions = {
  silenceMs: 60_000,
  maxDurationMs: 1_800_000,
  maxOpen: 50_000,
  attenuationThresholdsDb: [55, 63, 73],
  assumedTxPowerDbm: 0,
  bucketGapCapMs: 10_000,
};

// 1. Decode + aggregate on one core: adverts of a busy entrance (~500 phones in range).
const anchor = Date.UTC(2026, 10, 22, 8);
const crowd = new Crowd({ seed: 7, phones: 0, arrivalsPerMinute: 100, minDwellS: 60, maxDwellS: 600, anchor });
const adverts: Array<{ data: Buffer; rssi: number; address: string; time: number }> = [];
const ADVERTS = 2_000_000;
for (let t = anchor; adverts.length < ADVERTS; t += 1000) {
  crowd.advance(t - 1000, t, (data, rssi, address, time) => {
    if (adverts.length < ADVERTS) adverts.push({ data: Buffer.from(data), rssi, address, time });
  });
}
const state = createAggregator(aggregatorOptions);
const closed: ClosedEncounter[] = [];
const drops = newDropCounters();
let nextSweep = adverts[0].time + 1000;
const t0 = process.hrtime.bigint();
for (let i = 0; i < adverts.length; i++) {
  const a = adverts[i];
  const s = decodeAdvertisement(a.data, a.rssi, a.address, a.time, drops);
  if (s !== null) observe(state, s, closed);
  if (a.time >= nextSweep) {
    sweep(state, a.time, closed);
    nextSweep = a.time + 1000;
  }
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
closeAll(state, closed);
report.decode_aggregate_adverts_per_s = Math.round(adverts.length / seconds);
report.decode_aggregate_ns_per_advert = Math.round((seconds / adverts.length) * 1e9);
report.bench_adverts = adverts.length;
report.bench_encounters = closed.length;

// 2. Wire bytes per Exposure Notification encounter, as published (default 256 per batch).
const BATCH = 256;
let payloadBytes = 0;
let batches = 0;
const wire = closed.map((e, i) => toWire({ ...e, id: i + 1 }));
for (let i = 0; i + BATCH <= wire.length; i += BATCH) {
  payloadBytes += encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', seq: batches + 1, createdAt: Date.now() }, wire.slice(i, i + BATCH)).length;
  batches++;
}
const topic = 'vgw/v1/mall-01/gw-01/batch';
// MQTT 5 PUBLISH: fixed header (≤5), topic (2+len), packet id (2), properties (content type).
const mqttOverhead = 5 + 2 + topic.length + 2 + 1 + 3 + 'application/cbor'.length;
report.wire_bytes_per_encounter = +(payloadBytes / (batches * BATCH)).toFixed(2);
report.mqtt_bytes_per_encounter = +((payloadBytes + batches * mqttOverhead) / (batches * BATCH)).toFixed(2);

// 3. The store in steady state: one simulated hour of a busy venue (2 encounters closing
//    per second), group commit every second, batches cut and acknowledged as the backend would.
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-'));
const clock = { t: anchor };
const store = new Store({
  path: join(dir, 'bench.db'), groupCommitMs: 1000, retentionMs: 14 * 86_400_000, purgeBatchSize: 500,
  batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 200_000, now: () => clock.t,
});
store.onBatches((cut) => {
  for (const b of cut) store.addAck(b.id);
});
const HOUR_S = 3600;
const PER_S = 2;
const io0 = ioWriteBytes();
let fed = 0;
for (let s = 0; s < HOUR_S; s++) {
  clock.t += 1000;
  const slice = closed.slice(fed % closed.length, (fed % closed.length) + PER_S).map((e) => ({ ...e, lastSeen: clock.t, firstSeen: clock.t - 60_000 }));
  fed += slice.length;
  store.addEncounters(slice);
  store.commit();
}
store.close();
const io1 = ioWriteBytes();
rmSync(dir, { recursive: true, force: true });
report.store_encounters = fed;
report.write_tx_per_s = +(store.counters.write_transactions / HOUR_S).toFixed(3);
report.disk_bytes_per_encounter = Math.round((io1.write_bytes - io0.write_bytes) / fed);
report.disk_wchar_bytes_per_encounter = Math.round((io1.wchar - io0.wchar) / fed);
report.rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);

const targets: Record<string, string> = {
  decode_aggregate_adverts_per_s: '≥ 500000',
  wire_bytes_per_encounter: '≤ 40',
  write_tx_per_s: '≤ 1',
};
const rows = Object.entries(report).map(([k, v]) => `${k.padEnd(34)} ${String(v).padStart(12)}  ${targets[k] ?? ''}`);
process.stdout.write(`${'figure'.padEnd(34)} ${'measured'.padStart(12)}  target\n${rows.join('\n')}\n`);
mkdirSync(join(ROOT, 'bench'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'report.json'), JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`wrote ${join(ROOT, 'bench', 'report.json')}\n`);
