// `make bench`: measures the figures issue #2 names and writes bench/report.json (flat JSON).
// Phase 1 times decode + aggregate alone on pre-generated adverts; pipeline.ts and hci-stack.ts
// run in processes of their own so their memory figures stay their own.
// Figures come from running the real code paths; nothing here is asserted, only reported.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ulid } from 'ulid';
import { closeAll, ClosedEncounter, createAggregator, observe, sweep } from '../core/encounters/index.js';
import { decodeAdvertisement, newDropCounters } from '../core/protocols/index.js';
import { Crowd } from '../simulators/index.js';
import { newSigningSeed, signBytes, signingKeyFromSeed } from '../core/trust/index.js';
import { encodeBatch} from '../core/wire/index.js';
import { toWire } from '../core/encounters/index.js';
import { countSyncs, straceSyncArgs } from './fsyncs.js';
import { aggregatorOptions } from '../core/config/index.js';
import { figure } from './figures.js';

// Batches are measured as published: signed (64 bytes of Ed25519 signature each).
const signingKey = signingKeyFromSeed(newSigningSeed());
const sign = (data: Buffer) => signBytes(signingKey, data);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const report: Record<string, number> = {};

const defaults = aggregatorOptions();

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
const state = createAggregator(defaults);
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

// 2. Wire bytes per encounter for the same crowd-derived encounters, in full 256-encounter batches.
const BATCH = 256;
let payloadBytes = 0;
let batches = 0;
const wire = closed.map((e, i) => toWire({ ...e, id: i + 1 }));
for (let i = 0; i + BATCH <= wire.length; i += BATCH) {
  payloadBytes += encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: batches + 1, createdAt: Date.now() }, wire.slice(i, i + BATCH), sign).length;
  batches++;
}
const topic = 'vgw/v3/mall-01/gw-01/batch';
// MQTT 5 PUBLISH: fixed header (≤5), topic (2+len), packet id (2), properties (content type).
const mqttOverhead = 5 + 2 + topic.length + 2 + 1 + 3 + 'application/cbor'.length;
report.wire_bytes_per_encounter_full_batches = +(payloadBytes / (batches * BATCH)).toFixed(2);
report.mqtt_bytes_per_encounter_full_batches = +((payloadBytes + batches * mqttOverhead) / (batches * BATCH)).toFixed(2);

// 3. The pipeline in steady state, in its own process (memory, disk, transactions, and the
//    wire bytes of the batches as they are actually cut, partial ones included).
//    fsyncs are counted by strace (only fsync and fdatasync are traced, through seccomp-bpf).
const here = dirname(fileURLToPath(import.meta.url));
const straceOut = join(ROOT, 'bench', 'pipeline.strace');
mkdirSync(join(ROOT, 'bench'), { recursive: true });
const haveStrace = spawnSync('strace', ['-V']).status === 0;
const pipeline = haveStrace
  ? spawnSync('strace', straceSyncArgs(straceOut, [process.execPath, join(here, 'pipeline.js')]), { encoding: 'utf8' })
  : spawnSync(process.execPath, [join(here, 'pipeline.js')], { encoding: 'utf8' });
if (pipeline.status !== 0) throw new Error(`bench/pipeline failed: ${pipeline.stderr}`);
const pipelineReport = JSON.parse(pipeline.stdout) as Record<string, number>;
Object.assign(report, pipelineReport);
if (haveStrace) {
  report.disk_fsyncs_per_hour = Math.round(countSyncs(straceOut) / pipelineReport.pipeline_simulated_hours_total);
}

// 3b. A pull of 500,000 encounters: the gateway's memory and event-loop stalls meanwhile, in a
//     daemon that has been ingesting (the target) and in a process that has just started.
for (const mode of ['warm', 'cold']) {
  const pullRun = spawnSync(process.execPath, ['--expose-gc', join(here, 'pull.js'), '500000', mode], { encoding: 'utf8' });
  if (pullRun.status !== 0) throw new Error(`bench/pull ${mode} failed: ${pullRun.stderr}`);
  Object.assign(report, JSON.parse(pullRun.stdout) as Record<string, number>);
}

// 3c. The collector's syncs per batch: every ack follows a synced commit (issue 9), and
//     batches that arrive together share one.
const collectorRun = spawnSync(process.execPath, [join(here, 'collector.js')], { encoding: 'utf8' });
if (collectorRun.status !== 0) throw new Error(`bench/collector failed: ${collectorRun.stderr}`);
Object.assign(report, JSON.parse(collectorRun.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 4. The real radio path: virtual controller → H4 → noble → decoders → aggregation → SQLite,
//    with 500 stable phones, then with 1,000,000 addresses that each pass by once.
for (const mode of ['stable', 'rotating']) {
  const run = spawnSync(process.execPath, ['--expose-gc', join(dirname(fileURLToPath(import.meta.url)), 'hci-stack.js'), mode, '1000000'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`bench/hci-stack ${mode} failed: ${run.stderr}`);
  Object.assign(report, JSON.parse(run.stdout) as Record<string, number>);
}

// 5. BlueTrace with the gateway as central: noble connects to simulated OpenTrace phones.
const bt = spawnSync(process.execPath, ['--expose-gc', join(here, 'bluetrace.js'), '5000'], { encoding: 'utf8' });
if (bt.status !== 0) throw new Error(`bench/bluetrace failed: ${bt.stderr}`);
Object.assign(report, JSON.parse(bt.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 6. The backend for a fleet: a backlog stored by one and two collectors, into SQLite and
//    PostgreSQL; then 1,000 simulated gateways for 10 minutes with a broker restart (fleet.ts).
//    Full batches (256 encounters: a busy venue), then a fleet's typical few (6: the mix's mean).
for (const [batches, perBatch] of [['2000', '256'], ['20000', '6']]) {
  const ingest = spawnSync(process.execPath, [join(here, 'collector-ingest.js'), batches, perBatch], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (ingest.status !== 0) throw new Error(`bench/collector-ingest failed: ${ingest.stderr}`);
  Object.assign(report, JSON.parse(ingest.stdout.trim().split('\n').pop()!) as Record<string, number>);
}
const fleet = spawnSync(process.execPath, [join(here, 'fleet.js'), '1000', '10'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
if (fleet.status !== 0) throw new Error(`bench/fleet failed: ${fleet.stderr}`);
Object.assign(report, JSON.parse(fleet.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 7. The control plane: checking a signed control message, and a signed command's round trip to a real daemon.
const control = spawnSync(process.execPath, [join(here, 'control.js'), '300', '20000'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
if (control.status !== 0) throw new Error(`bench/control failed: ${control.stderr}`);
Object.assign(report, JSON.parse(control.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 8. Staged rollouts at fleet size: a good change to 1,000 simulated gateways through canary and
//    rate, then one that cuts units off their broker, stopped at the canary plus the failure budget.
const rollout = spawnSync(process.execPath, [join(here, 'rollout.js'), '1000'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
if (rollout.status !== 0) throw new Error(`bench/rollout failed: ${rollout.stderr}`);
Object.assign(report, JSON.parse(rollout.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 9. A release: its size, and a unit's update with the download excluded (check, unpack, flush, switch).
const release = spawnSync(process.execPath, [join(here, 'release.js'), '5'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
if (release.status !== 0) throw new Error(`bench/release failed: ${release.stderr}`);
Object.assign(report, JSON.parse(release.stdout.trim().split('\n').pop()!) as Record<string, number>);

// 10. Releases at fleet size: a good one to 1,000 simulated gateways through canary and rate (each
//     downloading and hashing the real tarball at 4 MB/s), then one that crashes at start.
const updates = spawnSync(process.execPath, [join(here, 'update-rollout.js'), '1000', '4'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
if (updates.status !== 0) throw new Error(`bench/update-rollout failed: ${updates.stderr}`);
Object.assign(report, JSON.parse(updates.stdout.trim().split('\n').pop()!) as Record<string, number>);

const rows = Object.entries(report).map(([k, v]) => `${k.padEnd(34)} ${String(v).padStart(12)}  ${figure(k).target ?? ''}`);
process.stdout.write(`${'figure'.padEnd(34)} ${'measured'.padStart(12)}  target\n${rows.join('\n')}\n`);
mkdirSync(join(ROOT, 'bench'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'report.json'), JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`wrote ${join(ROOT, 'bench', 'report.json')}\n`);
