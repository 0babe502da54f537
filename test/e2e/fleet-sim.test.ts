// The fleet simulator against a real Mosquitto and real collectors: 120 gateways with their own
// keys and sessions, the venue mix at 40 times business-hours traffic, two collectors in one shared
// group on one PostgreSQL, and the broker stopped and restarted mid-run. Every encounter the
// gateways made is at the backend exactly once, and the fleet reconnects and drains.
import { describe, expect, it } from 'vitest';
import { Collector, GatewayRegistry, PostgresCollectorStore } from '../../collector/index.js';
import { createLogger } from '../../core/log/index.js';
import { FleetSim } from '../../simulators/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { testBroker } from '../harness/collector.js';
import { usePostgres } from '../harness/postgres.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND } from '../harness/identity.js';

const dir = tempDir('vgw-fleet-');
const broker = useLocalBroker(dir);
const postgres = usePostgres();

describe('fleet simulator', () => {
  it('120 gateways, two collectors on PostgreSQL, a broker restart mid-run: nothing lost, nothing doubled, the backlog drains', async () => {
    const database = await postgres().database('fleet');
    const prefix = 'fleet/v2';
    const log = createLogger('error');
    const fleet = new FleetSim(
      { backendKeys: [TEST_BACKEND.key.publicKey], brokerUrl: broker().url, prefix, gateways: 120, speed: 40, seed: 3, rampS: 2, commitIntervalS: 2, batchMaxAgeS: 2, batchMaxEncounters: 64, resendInitialS: 1, resendMaxS: 4, reconnectS: 0.5, reconnectMaxS: 4 },
      log,
    );
    const registry = new GatewayRegistry(undefined, fleet.records);
    const collectors = ['a', 'b'].map((n) => new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, `fleet-collector-${n}`), prefix, database, shareGroup: 'fleet', registry }, log));
    await Promise.all(collectors.map((c) => c.start()));
    await fleet.start();
    await waitFor('traffic acknowledged before the restart', () => fleet.report().encountersAcked > 100, 60_000);
    const reconnect = await fleet.restartBroker(broker(), 3, 120);
    expect(await fleet.drain(120)).toBe(true);
    await fleet.stop();
    await Promise.all(collectors.map((c) => c.stop()));
    const report = fleet.report();
    const store = await PostgresCollectorStore.open(database);
    const atBackend = await fleet.verify((async function* () {
      for await (const e of store.encounters()) yield { gateway: e.gateway!, id: e.id, tempId: e.tempId.toString('hex') };
    })());
    await store.close();
    process.stdout.write(`fleet: ${JSON.stringify({ ...report, mix: undefined, atBackend })}\n`);
    expect(report.encountersMade).toBeGreaterThan(500);
    expect(atBackend).toEqual({ rows: report.encountersMade, lost: 0, duplicates: 0, foreign: 0 });
    expect(report.encountersAcked).toBe(report.encountersMade);
    expect(reconnect.backlogBatches).toBeGreaterThan(0);
    expect(reconnect.allConnectedS).not.toBeNull();
    expect(reconnect.drainS).not.toBeNull();
    // both collectors took a share of the batches
    for (const c of collectors) expect(c.counters.batchesStored).toBeGreaterThan(0);
    expect(collectors.reduce((n, c) => n + c.counters.encountersStored, 0)).toBe(report.encountersMade);
  }, 240_000);
});
