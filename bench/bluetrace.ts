// BlueTrace with the gateway as central, on the virtual controller (a child process of OpenTrace
// phones): unmodified noble connects, reads, writes, disconnects; exchanges go through the
// aggregator, which is swept as the daemon sweeps it, and closed encounters are encoded into
// batches as the store would hand them on. Reports exchanges per minute, RSS and heap growth per
// 10,000 exchanges (least-squares slopes of samples after a collection, once the open encounters
// reach their steady state) and wire bytes per BlueTrace encounter. argv: exchanges.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ulid } from 'ulid';
import { issueTempIds } from '../core/bluetrace/index.js';
import { aggregatorOptions } from '../core/config/index.js';
import { closeAll, ClosedEncounter, createAggregator, observe, sweep, toWire } from '../core/encounters/index.js';
import { createLogger } from '../core/log/index.js';
import { encodeBatch } from '../core/wire/index.js';
import { BluetraceCentral, NobleScanner } from '../daemon/radio/index.js';
import { memoryMb, slope } from './memory.js';

const target = Number(process.argv[2] ?? 3000);
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-bt-'));
const socketPath = join(dir, 'vc.sock');
const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'bluetrace-vc.js'), [socketPath], { stdio: 'inherit' });
await new Promise<void>((resolve) => child.once('message', () => resolve()));

const ids = issueTempIds(Buffer.alloc(32, 0x42), Buffer.alloc(21, 1).toString('base64'), Math.floor(Date.now() / 1000));
// Phones pass by ~50 times faster than at a venue (below), so encounters close that much sooner:
// otherwise the whole run is shorter than one silence and every encounter stays open.
const state = createAggregator({ ...aggregatorOptions(), bluetraceSilenceMs: 5000 });
const closed: ClosedEncounter[] = [];
let encoded = 0;
let bytes = 0;
let seq = 1;
const life = ulid();
/** Closed encounters leave as the store would pass them on under load: in full batches of 256, then dropped. */
function drain(all = false): void {
  while (closed.length >= 256 || (all && closed.length > 0)) {
    const wire = closed.splice(0, 256).map((e) => toWire({ ...e, id: ++encoded }));
    bytes += encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life, seq: seq++, createdAt: Date.now() }, wire, () => Buffer.alloc(64)).length;
  }
}
let exchanges = 0;
const central = new BluetraceCentral({
  serviceUuid: 'B82AB3FC-1595-4F6A-80F0-FE094CC218F9', characteristicUuid: '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', org: 'ID_PL', model: 'venue-gateway',
  connectionTimeoutMs: 6000, maxConnections: 2, skipMs: 100_000,
  venueTempId: (now) => ids.find((t) => t.start * 1000 <= now && now < t.expiry * 1000)?.tempId ?? null,
  now: Date.now,
  onExchange: (s) => {
    exchanges++;
    observe(state, s, closed);
  },
}, createLogger('silent'));
// Phones pass by ~50 times faster than at a venue: noble's tables are pruned that much sooner.
const scanner = new NobleScanner({ transport: { kind: 'unix', path: socketPath }, deviceId: 0, pruneIntervalMs: 6000, onNoble: (n) => central.attach(n) }, createLogger('silent'));
scanner.start(() => undefined);

const rss: Array<[number, number]> = [];
const heap: Array<[number, number]> = [];
const step = Math.max(250, Math.floor(target / 20));
let next = step;
let started = 0;
let startedAt = 0;
let sweptAt = 0;
while (exchanges < target) {
  await new Promise((r) => setTimeout(r, 50));
  if (started === 0 && exchanges >= 100) {
    started = exchanges;
    startedAt = performance.now();
  }
  if (performance.now() - sweptAt >= 1000) {
    sweep(state, Date.now(), closed);
    drain();
    sweptAt = performance.now();
  }
  if (exchanges >= next) {
    const m = memoryMb();
    rss.push([exchanges, m.rss]);
    heap.push([exchanges, m.heap]);
    next += step;
  }
}
const minutes = (performance.now() - startedAt) / 60_000;
scanner.stop();
child.kill();
closeAll(state, closed);
drain(true);
rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify({
  bluetrace_exchanges_per_min: Math.round((exchanges - started) / minutes),
  // the first half warms up: noble's tables and the open encounters fill to their steady state
  bluetrace_rss_growth_mb_per_10k_exchanges: +(slope(rss.slice(rss.length >> 1)) * 10_000).toFixed(2),
  bluetrace_heap_growth_mb_per_10k_exchanges: +(slope(heap.slice(heap.length >> 1)) * 10_000).toFixed(2),
  bluetrace_bench_exchanges: exchanges,
  wire_bytes_per_bluetrace_encounter: +(bytes / encoded).toFixed(2),
}) + '\n');
process.exit(0);
