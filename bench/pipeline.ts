// The daemon's pipeline in steady state, in a process of its own so its memory and disk
// figures are not mixed with the other benchmarks: simulated crowd → decode → aggregate →
// SQLite, one commit every store.checkpointS (60 simulated seconds, the default) with the
// checkpoint of open encounters → batches encoded as published, acked at once.
// Prints one JSON object.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../daemon/store/index.js';
import { newSigningSeed, signBytes, signingKeyFromSeed } from '../core/trust/index.js';
import { encodeBatch} from '../core/wire/index.js';
import { toWire } from '../core/encounters/index.js';
import { ARRIVALS_PER_MINUTE, crowdIngest } from './crowd-ingest.js';

// Batches are measured as published: signed (64 bytes of Ed25519 signature each).
const signingKey = signingKeyFromSeed(newSigningSeed());
const sign = (data: Buffer) => signBytes(signingKey, data);

const HOURS = 2;
const CHECKPOINT_S = Number(process.env.VGW_BENCH_CHECKPOINT_S ?? 60);

function io(): { write_bytes: number; wchar: number } {
  const text = readFileSync('/proc/self/io', 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { write_bytes: get('write_bytes'), wchar: get('wchar') };
}

const anchor = Date.UTC(2026, 10, 22, 8);
const ingest = crowdIngest(11, anchor);
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-pipeline-'));
const clock = { t: anchor };
const store = new Store({
  path: join(dir, 'gateway.db'), commitIntervalMs: 1000, retentionMs: 14 * 86_400_000, unackedMaxMs: 30 * 86_400_000, purgeBatchSize: 500,
  batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 200_000, now: () => clock.t,
  steadyNow: () => clock.t - anchor, openEncounters: ingest.open,
});
let wireBytes = 0;
let wireEncounters = 0;
store.onBatches((cut) => {
  for (const b of cut) {
    const encounters = store.batchEncounters(b.id).map(toWire);
    wireBytes += encodeBatch({ kind: 'batch', id: b.id, gateway: 'gw-01', venue: 'mall-01', life: b.life, seq: b.seq, createdAt: b.createdAt }, encounters, sign).length;
    wireEncounters += encounters.length;
    store.addAck(b.id);
  }
});
const warmupS = 1800; // fill the venue before measuring
const io0 = { v: io() };
let tx0 = 0;
let stored0 = 0;
const started = process.hrtime.bigint();
for (let s = 1; s <= warmupS + HOURS * 3600; s++) {
  if (s === warmupS + 1) {
    // The window starts and ends with the WAL copied into the file, so the writes SQLite
    // defers to its next checkpoint are counted too.
    store.checkpointWal();
    io0.v = io();
    tx0 = store.counters.writeTransactions;
    stored0 = store.counters.encountersStored;
  }
  clock.t = anchor + s * 1000;
  ingest.second(clock.t, store);
  if (s % CHECKPOINT_S === 0) store.commit();
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
store.checkpointWal();
const io1 = io();
const stored = store.counters.encountersStored - stored0;
const tx = store.counters.writeTransactions - tx0;
store.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify({
    pipeline_arrivals_per_minute: ARRIVALS_PER_MINUTE,
    pipeline_simulated_hours: HOURS,
    pipeline_adverts: ingest.adverts,
    pipeline_adverts_per_s: Math.round(ingest.adverts / seconds),
    pipeline_encounters: stored,
    wire_bytes_per_encounter: +(wireBytes / wireEncounters).toFixed(2),
    disk_bytes_per_encounter: Math.round((io1.write_bytes - io0.v.write_bytes) / stored),
    disk_wchar_bytes_per_encounter: Math.round((io1.wchar - io0.v.wchar) / stored),
    disk_bytes_per_hour: Math.round((io1.write_bytes - io0.v.write_bytes) / HOURS),
    write_tx_per_s: +(tx / (HOURS * 3600)).toFixed(3),
    pipeline_checkpoint_s: CHECKPOINT_S,
    pipeline_simulated_hours_total: (warmupS + HOURS * 3600) / 3600,
    rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  }) + '\n',
);
