import { statSync, rmSync } from 'node:fs';
import { createAggregator, observe, sweep } from './dist/daemon/encounters/index.js';
import { decodeAdvertisement, newDropCounters } from './dist/daemon/protocols/index.js';
import { Crowd } from './dist/daemon/radio/index.js';
import { Store } from './dist/daemon/store/index.js';
import Database from 'better-sqlite3';
const CP = Number(process.argv[2] ?? 30);
const anchor = Date.UTC(2026, 10, 22, 8);
const crowd = new Crowd({ seed: 11, phones: 0, arrivalsPerMinute: 60, minDwellS: 60, maxDwellS: 600, anchor });
const state = createAggregator({ silenceMs: 60_000, maxDurationMs: 1_800_000, maxOpen: 50_000, attenuationThresholdsDb: [55, 63, 73], assumedTxPowerDbm: 0, bucketGapCapMs: 10_000 });
const path = '/tmp/diag.db'; for (const s of ['', '-wal', '-shm', '.lineage']) { try { rmSync(path + s); } catch {} }
const clock = { t: anchor };
const store = new Store({ path, commitIntervalMs: 1000, retentionMs: 14 * 86_400_000, unackedMaxMs: 30 * 86_400_000, purgeBatchSize: 500, batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 200_000, now: () => clock.t, steadyNow: () => clock.t - anchor, openEncounters: () => state.open.values() });
store.onBatches((cut) => { for (const b of cut) store.addAck(b.id); });
const drops = newDropCounters(); const closed = [];
const db = new Database(path, { readonly: true });
let prevWal = 0; let tot = 0, totEnc = 0, n = 0;
for (let s = 1; s <= 3600; s++) {
  clock.t = anchor + s * 1000;
  crowd.advance(clock.t - 1000, clock.t, (data, rssi, address, time) => { const x = decodeAdvertisement(data, rssi, address, time, drops); if (x) observe(state, x, closed); });
  sweep(state, clock.t, closed); store.addEncounters(closed); closed.length = 0;
  if (s % CP === 0) {
    const e0 = store.counters.encounters_stored;
    store.commit();
    const wal = statSync(path + '-wal').size;
    const blob = db.prepare('SELECT length(data) FROM open_checkpoint').pluck().get();
    const d = wal - prevWal;
    if (s > 1800 && d > 0) { tot += d; totEnc += store.counters.encounters_stored - e0; n++; if (n < 6) console.log(`open ${state.open.size} blob ${blob} new enc ${store.counters.encounters_stored - e0} wal +${d} (${Math.round(d / 1048)} pages)`); }
    prevWal = wal;
  }
}
console.log('wal bytes per encounter', Math.round(tot / totEnc), 'pages/commit', Math.round(tot / n / 1048));
