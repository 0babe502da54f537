// A staged rollout to a fleet (issue 26, item 6): 40 simulated gateways (the real uplink, signing
// and the unit's own rules for the backend's configuration) on a real Mosquitto, a real collector
// driving the rollout from its database. A good fleet-wide change reaches the canary, then every
// unit, each applying it behind its health gate; a change that cuts units off their broker stops
// by itself having reached at most the canary plus the failure budget, every unit it reached rolls
// back by itself, the layer is restored, and no encounter is lost or doubled across either.
import { describe, expect, it } from 'vitest';
import { Collector, CollectorDb, GatewayRegistry } from '../../collector/index.js';
import { startChange } from '../../collector/rollouts.js';
import { counts, type Rollout } from '../../core/fleet/index.js';
import { createLogger } from '../../core/log/index.js';
import { FleetSim } from '../../simulators/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { testBroker } from '../harness/collector.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND } from '../harness/identity.js';
import { join } from 'node:path';

const dir = tempDir('vgw-rollout-');
const broker = useLocalBroker(dir);

describe('staged rollout to a fleet', () => {
  it('a good change reaches every unit after the canary; a breaking one stops at canary + budget and every unit it reached rolls back', async () => {
    const prefix = 'rollout/v3';
    const log = createLogger('error');
    const fleet = new FleetSim(
      { backendKeys: [TEST_BACKEND.key.publicKey], brokerUrl: broker().url, prefix, gateways: 40, speed: 20, seed: 5, rampS: 1, commitIntervalS: 2, batchMaxAgeS: 2, resendInitialS: 1, resendMaxS: 4, reconnectS: 0.5, reconnectMaxS: 2, healthGateS: 10 },
      log,
    );
    const registry = new GatewayRegistry(undefined, fleet.records);
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'rollout-collector'), prefix, database: join(dir, 'collector.db'), registry, statusFlushMs: 500, rolloutTickMs: 250 }, log);
    await collector.start();
    await fleet.start();
    await waitFor('every unit online at the collector', async () => (await collector.store.statuses()).filter((s) => s.state === 'online').length === 40, 60_000);
    const rolloutOf = async (id: string): Promise<Rollout> => (await collector.store.rollouts()).find((r) => r.rollout.id === id)!.rollout;

    // 1. statuses every 300 s instead of 30, to the fleet: canary of 4 first, then the rest
    const good = await startChange(collector.store, registry, 'fleet', '', { uplink: { statusIntervalS: 300 } }, { canary: 4, ratePerMinute: 600, abortAfter: 3, settleMs: 60_000 });
    const canaryIds = good.rollout.units.slice(0, 4).map((u) => u.gateway);
    let sawCanaryAlone = false;
    await waitFor('the good rollout done', async () => {
      const r = await rolloutOf(good.rollout.id);
      const c = counts(r);
      // while the canary settles, no other unit has been sent anything
      if (c.sent > 0 && r.units.slice(4).every((u) => u.state === 'pending')) sawCanaryAlone = true;
      return r.state === 'done';
    }, 90_000);
    const done = await rolloutOf(good.rollout.id);
    expect(counts(done)).toMatchObject({ applied: 40, failed: 0, pending: 0, offline: 0 });
    expect(sawCanaryAlone).toBe(true);
    expect(Math.min(...done.units.slice(4).map((u) => u.sentAt!))).toBeGreaterThanOrEqual(Math.max(...done.units.slice(0, 4).map((u) => u.settledAt!)));
    expect(done.units.slice(0, 4).map((u) => u.gateway)).toEqual(canaryIds);
    // each unit runs it: its uplink's status interval, and its status says the version committed
    for (const g of fleet.gateways) {
      expect(g.config?.uplink.statusIntervalS).toBe(300);
      expect(g.remote.status()).toMatchObject({ state: 'committed', version: 1, last: { version: 1, outcome: 'applied' } });
    }
    const metrics = await collector.metrics.registry.metrics();
    expect(metrics).toContain(`vgw_rollout_units{rollout="${good.rollout.id}",change="fleet version 1",state="applied"} 40`);

    // 2. a broker no unit can reach: the canary rolls back by itself, the rollout stops, the layer is restored
    const bad = await startChange(collector.store, registry, 'fleet', '', { uplink: { statusIntervalS: 300 }, broker: { url: 'mqtt://127.0.0.1:9' } }, { canary: 2, ratePerMinute: 600, abortAfter: 2, settleMs: 60_000 });
    await waitFor('the breaking rollout aborted', async () => (await rolloutOf(bad.rollout.id)).state === 'aborted', 90_000);
    const aborted = await rolloutOf(bad.rollout.id);
    const reached = aborted.units.filter((u) => u.state !== 'pending');
    expect(reached.length).toBeLessThanOrEqual(2 + 2);
    expect(aborted.reason).toMatch(/^2 units failed \(the rollout stops at 2\); fleet restored to its settings before version 2$/);
    await waitFor('every unit reached rolled back and reconnected', () => reached.every((u) => {
      const g = fleet.gateways.find((x) => x.id === u.gateway)!;
      return g.remote.status().last?.outcome === 'rolledBack' && g.uplink.connected;
    }), 60_000);
    for (const u of reached) {
      const g = fleet.gateways.find((x) => x.id === u.gateway)!;
      expect(g.remote.status()).toMatchObject({ state: 'committed', version: 1 });
      expect(g.config?.broker.url).toBe(broker().url);
    }
    // the units it never reached run on untouched
    expect(fleet.gateways.filter((g) => g.remote.status().last?.outcome === 'applied').length).toBe(40 - reached.length);
    expect((await collector.store.layers()).find((l) => l.scope === 'fleet')).toMatchObject({ version: 3, settings: { uplink: { statusIntervalS: 300 } } });

    // nothing lost, nothing doubled across both
    expect(await fleet.drain(60)).toBe(true);
    await fleet.stop();
    await collector.stop();
    const report = fleet.report();
    const db = new CollectorDb(join(dir, 'collector.db'));
    const atBackend = await fleet.verify((async function* () {
      for await (const e of db.encounters()) yield { gateway: e.gateway!, id: e.id, tempId: e.tempId.toString('hex') };
    })());
    db.close();
    expect(report.encountersMade).toBeGreaterThan(50);
    expect(atBackend).toEqual({ rows: report.encountersMade, lost: 0, duplicates: 0, foreign: 0 });
  }, 240_000);
});
