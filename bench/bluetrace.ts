// BlueTrace with the gateway as central, on the virtual controller (a child process of OpenTrace
// phones): unmodified noble connects, reads, writes, disconnects; exchanges go through the
// aggregator. Reports exchanges per minute, RSS growth per 10,000 exchanges (least-squares slope
// of samples after a collection) and wire bytes per BlueTrace encounter. argv: exchanges.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ulid } from 'ulid';
import { issueTempIds } from '../core/bluetrace/index.js';
import { aggregatorOptions } from '../core/config/index.js';
import { closeAll, ClosedEncounter, createAggregator, observe, toWire } from '../core/encounters/index.js';
import { createLogger } from '../core/log/index.js';
import { encodeBatch } from '../core/wire/index.js';
import { BluetraceCentral, NobleScanner } from '../daemon/radio/index.js';
import { rssMb, slope } from './memory.js';

const target = Number(process.argv[2] ?? 3000);
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-bt-'));
const socketPath = join(dir, 'vc.sock');
const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'bluetrace-vc.js'), [socketPath], { stdio: 'inherit' });
await new Promise<void>((resolve) => child.once('message', () => resolve()));

const ids = issueTempIds(Buffer.alloc(32, 0x42), Buffer.alloc(21, 1).toString('base64'), Math.floor(Date.now() / 1000));
const state = createAggregator(aggregatorOptions());
const closed: ClosedEncounter[] = [];
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

const samples: Array<[number, number]> = [];
const step = Math.max(250, Math.floor(target / 10));
let next = step;
let started = 0;
let startedAt = 0;
while (exchanges < target) {
  await new Promise((r) => setTimeout(r, 50));
  if (started === 0 && exchanges >= 100) {
    started = exchanges;
    startedAt = performance.now();
  }
  if (exchanges >= next) {
    samples.push([exchanges, rssMb()]);
    next += step;
  }
}
const minutes = (performance.now() - startedAt) / 60_000;
scanner.stop();
child.kill();
closeAll(state, closed);
const wire = closed.map((e, i) => toWire({ ...e, id: i + 1 }));
let bytes = 0;
for (let i = 0; i < wire.length; i += 256) {
  bytes += encodeBatch({ kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: 1 + i / 256, createdAt: Date.now() }, wire.slice(i, i + 256), () => Buffer.alloc(64)).length;
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(JSON.stringify({
  bluetrace_exchanges_per_min: Math.round((exchanges - started) / minutes),
  bluetrace_rss_growth_mb_per_10k_exchanges: +(slope(samples.slice(2)) * 10_000).toFixed(2),
  bluetrace_bench_exchanges: exchanges,
  wire_bytes_per_bluetrace_encounter: +(bytes / wire.length).toFixed(2),
}) + '\n');
process.exit(0);
