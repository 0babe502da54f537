// A pull of 500,000 encounters against the real uplink, store and a private Mosquitto, in a
// process of its own: how much the gateway's memory rises and the longest the event loop is
// blocked meanwhile (issue 8's targets: ≤ 30 MB, ≤ 50 ms). Prints one JSON object.
// Run with --expose-gc so the baseline is taken after a collection.
//
// The baseline is a daemon at work: ten minutes of a crowd's adverts go through decode,
// aggregation and the store first. A process that has only just started has touched half of
// V8's young generation (one semi-space); a running daemon has touched both long before anyone
// pulls, so a cold process would count some 13 MB of warm-up against the pull. With `cold` as
// the second argument the warm-up is skipped, and that figure is reported too.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LocalBroker } from '../simulators/index.js';
import type { ClosedEncounter } from '../core/encounters/index.js';
import { createLogger } from '../core/log/index.js';
import { Store } from '../daemon/store/index.js';
import { Uplink } from '../daemon/uplink/index.js';
import { randomBytes } from 'node:crypto';
import { signingKeyFromSeed } from '../core/trust/index.js';
import { ControlSigner, trustedKey, type StatusCounters } from '../core/wire/index.js';
import { crowdIngest } from './crowd-ingest.js';

const ROWS = Number(process.argv[2] ?? 500_000);
const COLD = process.argv[3] === 'cold';
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const T0 = Date.UTC(2026, 10, 8);
const openStore = (path: string) => new Store({
  path, commitIntervalMs: 1000, retentionMs: 3650 * 86_400_000, unackedMaxMs: 3650 * 86_400_000, purgeBatchSize: 500,
  batchMaxEncounters: 256, batchMaxAgeMs: 0, maxPendingEncounters: 2_000_000, now: () => T0 + 15 * 86_400_000,
});

if (process.argv[3] === 'fill') {
  fill(process.argv[4]);
  process.exit(0);
}

/** Fourteen days of a busy entrance, acknowledged: what a health officer's pull would find. */
function fill(path: string): void {
  const store = openStore(path);
  const tempId = Buffer.alloc(16);
  for (let i = 0; i < ROWS; i += 10_000) {
  const chunk: ClosedEncounter[] = [];
    for (let k = i; k < Math.min(ROWS, i + 10_000); k++) {
    tempId.writeUInt32BE(k, 0);
    const lastSeen = T0 + Math.floor((k / ROWS) * 14 * 86_400_000);
    chunk.push({
      protocol: 0, tempId: Buffer.from(tempId), metadata: Buffer.alloc(4, k & 0xff), firstSeen: lastSeen - 120_000, lastSeen,
      count: 300, rssiMin: -85, rssiMax: -55, rssiSum: -300 * 70, rssiCount: 300, bucketMs: [10_000, 40_000, 50_000, 20_000], clockSynced: true, closeReason: 'silence',
    });
  }
  store.addEncounters(chunk);
  store.commit();
  for (const b of store.outbox()) store.addAck(b.id);
  }
  store.close();
}

/** The daemon's ingest path for `seconds` of a busy entrance, outside the pulled range. */
function ingest(anchor: number, seconds: number): void {
  const crowd = crowdIngest(5, anchor);
  for (let s = 1; s <= seconds; s++) {
    crowd.second(anchor + s * 1000, store);
    if (s % 60 === 0) store.commit();
  }
  // Acknowledged as a collector would, so the uplink is not resending them during the pull.
  store.commit();
  for (const b of store.outbox()) store.addAck(b.id);
  store.commit();
}

// The database is filled by another process: this one's memory starts as a daemon's would.
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-pull-'));
const filled = spawnSync(process.execPath, [fileURLToPath(import.meta.url), String(ROWS), 'fill', join(dir, 'gateway.db')], { stdio: 'inherit' });
if (filled.status !== 0) throw new Error('filling the pull database failed');
const broker = await LocalBroker.start(join(dir, 'broker'));
const store = openStore(join(dir, 'gateway.db'));
// The requester signs its pull with this key, which the gateway trusts.
const backendSeed = randomBytes(32);
const gatewayKey = signingKeyFromSeed(randomBytes(32));
const uplink = new Uplink(
  {
    broker: { url: broker.url, clientId: 'vgw-gw-01', keepaliveS: 30, connectTimeoutS: 5, reconnectS: 1 },
    prefix: 'bench/v1', venue: 'mall-01', gateway: 'gw-01', maxInflightBatches: 8, resendInitialMs: 5000, resendMaxMs: 300_000,
    statusIntervalMs: 30_000, maxRequestBytes: 65_536, maxPullEncounters: 1_000_000, batchMaxEncounters: 256,
    trustedKeys: [trustedKey(new ControlSigner(backendSeed).key.publicKey)], requestMaxSkewMs: 300_000, signingKey: gatewayKey, config: { version: 'sha256:bench', source: 'simulated' },
  },
  // no radio or aggregator here: the status it publishes has empty counters, and nothing reads it
  store, () => ({}) as StatusCounters, createLogger('silent'),
);
uplink.start();
await new Promise<void>((resolve) => {
  const t = setInterval(() => {
    if (uplink.connected) {
      clearInterval(t);
      resolve();
    }
  }, 50);
});
if (!COLD) ingest(T0 + 40 * 86_400_000, 600);
await new Promise((r) => setTimeout(r, 500));
gc();
const rssBefore = process.memoryUsage().rss;
let rssPeak = rssBefore;
let peakDetail = process.memoryUsage();
const before = process.memoryUsage();
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > rssPeak) {
    rssPeak = m.rss;
    peakDetail = m;
  }
}, 20);
const loop = monitorEventLoopDelay({ resolution: 5 });
loop.enable();
const started = Date.now();
const requester = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'pull-requester.js'), broker.url, 'bench/v1', String(T0 - 86_400_000), String(T0 + 30 * 86_400_000), backendSeed.toString('hex'), gatewayKey.publicKey.toString('hex')], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
requester.stdout.on('data', (d: Buffer) => (out += d.toString()));
const code = await new Promise<number | null>((resolve) => requester.once('exit', resolve));
const seconds = (Date.now() - started) / 1000;
loop.disable();
clearInterval(sampler);
if (code !== 0) throw new Error(`pull requester failed (${code})`);
gc();
const after = process.memoryUsage();
const answer = JSON.parse(out) as { parts: number; encounters: number };
if (answer.encounters !== ROWS) throw new Error(`pull returned ${answer.encounters} of ${ROWS} encounters`);
await uplink.stop();
store.close();
await broker.stop();
rmSync(dir, { recursive: true, force: true });
const prefix = COLD ? 'pull_cold_' : 'pull_';
const figures = {
    pull_encounters: answer.encounters,
    pull_parts: answer.parts,
    pull_seconds: +seconds.toFixed(1),
    pull_rss_growth_mb: +((rssPeak - rssBefore) / 1048576).toFixed(1),
    pull_max_loop_block_ms: +(loop.max / 1e6).toFixed(1),
    pull_rss_growth_after_gc_mb: +((after.rss - before.rss) / 1048576).toFixed(1),
    pull_heap_used_growth_after_gc_mb: +((after.heapUsed - before.heapUsed) / 1048576).toFixed(1),
    pull_heap_growth_mb: +((peakDetail.heapTotal - before.heapTotal) / 1048576).toFixed(1),
    pull_external_growth_mb: +((peakDetail.external - before.external) / 1048576).toFixed(1),
};
process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(figures).map(([k, v]) => [k.replace(/^pull_/, prefix), v]))) + '\n');
