// The real radio path under load, in a process of its own: a virtual controller (child
// process) floods LE Advertising Reports over H4 on a unix socket → unmodified noble → decode
// → aggregate → SQLite group commit. argv: mode (stable | rotating), report count.
// Prints one JSON object. Run with --expose-gc so memory samples are taken after a collection.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClosedEncounter, createAggregator, observe, sweep } from '../core/encounters/index.js';
import { createLogger } from '../core/log/index.js';
import { decodeAdvertisement, newDropCounters } from '../core/protocols/index.js';
import { NobleScanner } from '../daemon/radio/index.js';
import { Store } from '../daemon/store/index.js';
import { aggregatorOptions } from '../core/config/index.js';
import { memoryMb, slope } from './memory.js';

const mode = process.argv[2] === 'rotating' ? 'rotating' : 'stable';
const count = Number(process.argv[3] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-hci-'));
const socketPath = join(dir, 'vc.sock');

const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'vc-flood.js'), [socketPath, String(count), mode], { stdio: 'inherit' });
await new Promise<void>((resolve) => child.once('message', () => resolve()));

const store = new Store({
  path: join(dir, 'gateway.db'), commitIntervalMs: 1000, retentionMs: 14 * 86_400_000, unackedMaxMs: 30 * 86_400_000, purgeBatchSize: 500,
  batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 2_000_000,
});
store.onBatches((cut) => cut.forEach((b) => store.addAck(b.id)));
store.start((err) => {
  throw err;
});
const state = createAggregator(aggregatorOptions());
const closed: ClosedEncounter[] = [];
const drops = newDropCounters();
// At flood rates addresses pass by ~10,000 times faster than at a venue: prune that much sooner.
const scanner = new NobleScanner({ transport: { kind: 'unix', path: socketPath }, deviceId: 0, pruneIntervalMs: mode === 'rotating' ? 250 : 60_000 }, createLogger('silent'));
let received = 0;
// The controller sends ten chunks and waits between them; at each pause the stack drains and
// commits, then RSS is sampled after a collection. Growth is the least-squares slope of the
// samples past the first two (caps filled), which one noisy sample cannot skew.
const samples: Array<[number, number]> = [];
const heapSamples: Array<[number, number]> = [];
const chunk = Math.ceil(count / 10);
let chunkStart = 0;
let activeMs = 0;
const done = new Promise<void>((resolve) => {
  scanner.start((data, rssi, address, time) => {
    if (received % chunk === 0) chunkStart = performance.now();
    received++;
    const s = decodeAdvertisement(data, rssi, address, time, drops);
    if (s) observe(state, s, closed);
    if (received % chunk === 0 || received === count) {
      activeMs += performance.now() - chunkStart;
      setTimeout(() => {
        const m = memoryMb();
        samples.push([received, m.rss]);
        heapSamples.push([received, m.heap]);
        if (received === count) resolve();
        else child.send('next');
      }, 1500);
    }
  });
});
const sweeper = setInterval(() => {
  sweep(state, Date.now(), closed);
  store.addEncounters(closed);
  closed.length = 0;
}, 1000);
await done;
const seconds = activeMs / 1000;

clearInterval(sweeper);
scanner.stop();
store.close();
child.kill();
rmSync(dir, { recursive: true, force: true });
const result: Record<string, number> =
  mode === 'stable'
    ? { hci_stack_adverts_per_s: Math.round(count / seconds), hci_stack_reports: count }
    : {
        rss_growth_mb_per_1m_addresses: +(slope(samples.slice(2)) * 1_000_000).toFixed(1),
        heap_used_growth_mb_per_1m_addresses: +(slope(heapSamples.slice(2)) * 1_000_000).toFixed(1),
        rss_mb_rotating_min: Math.round(Math.min(...samples.slice(2).map(([, r]) => r))),
        rss_mb_rotating_max: Math.round(Math.max(...samples.slice(2).map(([, r]) => r))),
        rotating_addresses: count,
        rotating_adverts_per_s: Math.round(count / seconds),
        noble_remembered_addresses_at_end: scanner.rememberedAddresses,
      };
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
