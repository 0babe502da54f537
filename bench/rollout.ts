// Staged rollouts at fleet size (issue 26, item 6): 1,000 simulated gateways (the real uplink and
// signing, the unit's own rules for the backend's configuration) on a private Mosquitto, a
// collector on SQLite driving the rollouts. First a good fleet-wide change (statuses every 300 s
// instead of 30) through canary and rate; then one that cuts units off their broker. Prints one
// JSON object.
//   node dist/bench/rollout.js [gateways]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Collector, CollectorDb, GatewayRegistry } from '../collector/index.js';
import { startChange } from '../collector/rollouts.js';
import { counts, type Rollout, type RolloutPlan } from '../core/fleet/index.js';
import { createLogger } from '../core/log/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { FleetSim, LocalBroker } from '../simulators/index.js';

const GATEWAYS = Number(process.argv[2] ?? 1000);
const HEALTH_GATE_S = 30;
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-rollout-'));
const log = createLogger('error');
const backend = new ControlSigner(randomBytes(32));
const broker = await LocalBroker.start(join(dir, 'broker'));
const prefix = 'bench/v3';
const fleet = new FleetSim({ backendKeys: [backend.key.publicKey], brokerUrl: broker.url, prefix, gateways: GATEWAYS, seed: 11, rampS: 20, healthGateS: HEALTH_GATE_S }, log);
const registry = new GatewayRegistry(undefined, fleet.records);
const database = join(dir, 'collector.db');
const collector = new Collector({ control: backend, broker: { url: broker.url, clientId: 'bench-rollout-collector', keepaliveS: 30, connectTimeoutS: 10, reconnectS: 1 }, prefix, database, registry }, log);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutS: number): Promise<void> {
  const end = Date.now() + timeoutS * 1000;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutS} s`);
    await sleep(250);
  }
}
const rolloutOf = async (id: string): Promise<Rollout> => (await collector.store.rollouts()).find((r) => r.rollout.id === id)!.rollout;
const share = (pct: number) => Math.max(1, Math.ceil((pct / 100) * GATEWAYS));

await collector.start();
await fleet.start();
await until('every gateway online at the collector', async () => (await collector.store.statuses()).filter((s) => s.state === 'online').length === GATEWAYS, 180);

// 1. A good change: canary 5 %, then 1,200 units a minute, stopping at 5 % failed.
const goodPlan: RolloutPlan = { canary: share(5), ratePerMinute: 1200, abortAfter: share(5), settleMs: 600_000 };
const good = await startChange(collector.store, registry, 'fleet', '', { uplink: { statusIntervalS: 300 } }, goodPlan);
await until('the good rollout done', async () => (await rolloutOf(good.rollout.id)).state !== 'running', 900);
const done = await rolloutOf(good.rollout.id);
const doneAt = Math.max(...done.units.map((u) => u.settledAt ?? 0));
const runningTheChange = fleet.gateways.filter((g) => g.config?.uplink.statusIntervalS === 300 && g.remote.status().state === 'committed').length;

// 2. A change that cuts every unit it reaches off the broker: canary 5 %, stopping at 2 % failed.
const badPlan: RolloutPlan = { canary: share(5), ratePerMinute: 1200, abortAfter: share(2), settleMs: 600_000 };
const bad = await startChange(collector.store, registry, 'fleet', '', { uplink: { statusIntervalS: 300 }, broker: { url: 'mqtt://127.0.0.1:9' } }, badPlan);
await until('the breaking rollout stopped', async () => (await rolloutOf(bad.rollout.id)).state !== 'running', 900);
const abortedAfterS = (Date.now() - bad.rollout.createdAt) / 1000;
const aborted = await rolloutOf(bad.rollout.id);
const reached = new Set(aborted.units.filter((u) => u.state !== 'pending').map((u) => u.gateway));
const reachedUnits = fleet.gateways.filter((g) => reached.has(g.id));
const backOnBroker = (g: (typeof reachedUnits)[number]) => g.uplink.connected && g.remote.status().last?.outcome === 'rolledBack';
// up to 5 minutes for them all; those that are not by then are the figure (counted now: once the fleet stops, none is connected)
await until('every unit it reached back on its broker', () => reachedUnits.every(backOnBroker), 300).catch(() => undefined);
const notRolledBack = reachedUnits.filter((g) => !backOnBroker(g)).length;

// Nothing lost across both.
const drained = await fleet.drain(300);
await fleet.stop();
await collector.stop();
const db = new CollectorDb(database);
const atBackend = await fleet.verify((async function* () {
  for await (const e of db.encounters()) yield { gateway: e.gateway!, id: e.id, tempId: e.tempId.toString('hex') };
})());
db.close();
await broker.stop();
rmSync(dir, { recursive: true, force: true });

const report: Record<string, number> = {
  fleet_config_gateways: GATEWAYS,
  // from the start of the stage after the canary until the last unit reported the change applied
  fleet_config_converge_s: +((doneAt - (done.restStartedAt ?? done.createdAt)) / 1000).toFixed(1),
  fleet_config_not_applied: GATEWAYS - runningTheChange,
  fleet_config_total_s: +((doneAt - done.createdAt) / 1000).toFixed(1),
  fleet_config_applied: counts(done).applied,
  fleet_config_abort_units: reached.size,
  fleet_config_abort_bound: badPlan.canary + badPlan.abortAfter,
  fleet_config_abort_overshoot: Math.max(0, reached.size - (badPlan.canary + badPlan.abortAfter)),
  fleet_config_abort_not_rolled_back: notRolledBack,
  fleet_config_abort_s: +abortedAfterS.toFixed(1),
  fleet_config_lost: drained ? atBackend.lost : -1,
  fleet_config_duplicates: atBackend.duplicates,
};
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
