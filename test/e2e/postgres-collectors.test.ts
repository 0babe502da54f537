// Two `vgw collect` processes in one MQTT 5 shared-subscription group, writing into one
// PostgreSQL, each killed with SIGKILL in turn while a gateway that is itself killed 8 times
// ingests and flushes: every encounter the gateway committed is in the database exactly once.
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { Collector, DAY_MS, PostgresCollectorStore } from '../../collector/index.js';
import { createLogger } from '../../core/log/index.js';
import { testBroker } from '../harness/collector.js';
import { waitFor } from '../harness/processes.js';
import { useLocalBroker } from '../harness/broker.js';
import { killStorm } from '../harness/kill-storm.js';
import { usePostgres } from '../harness/postgres.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND } from '../harness/identity.js';

const dir = tempDir('vgw-pgcollectors-');
const broker = useLocalBroker(dir);
const postgres = usePostgres();

describe('collectors sharing PostgreSQL', () => {
  it('two collectors in one shared group, SIGKILLed in turn: every committed encounter stored once', async () => {
    const database = await postgres().database('storm');
    const r = await killStorm({ dir, broker: broker(), kills: 8, collectorKillEvery: 1, collectors: 2, database, seed: 909, speed: 30 });
    process.stdout.write(`collectors on PostgreSQL: ${JSON.stringify(r)}\n`);
    expect(r.collectorKills).toBe(8);
    expect(r.lives).toBe(9);
    expect(r.committed).toBeGreaterThan(30);
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.atCollector).toBe(r.committed);
  }, 300_000);

  it('a collector with collector.retentionDays drops the expired days when it starts (and hourly after)', async () => {
    const database = await postgres().database('retention');
    const store = await PostgresCollectorStore.open(database);
    const day = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const life = ulid();
    const encounter = (id: number, firstSeen: number) => ({
      id, protocol: 0, tempId: Buffer.alloc(16, id), metadata: Buffer.alloc(4), firstSeen, lastSeen: firstSeen + 60_000, count: 5,
      rssiMin: -80, rssiMax: -70, rssiMean: -75, attenuationS: [0, 60, 0, 0], clockSynced: true,
    });
    const batch = { kind: 'batch' as const, id: ulid(), gateway: 'gw-old', venue: 'v-old', life, seq: 1, createdAt: day, hash: Buffer.alloc(32),
      encounters: [encounter(1, day - 20 * DAY_MS), encounter(2, day - 15 * DAY_MS), encounter(3, day - 13 * DAY_MS), encounter(4, day)] };
    await store.commit([{ batch, signer: null }]);
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'retention-collector'), prefix: 'retention/v2', database, registry: null, retentionDays: 14 }, createLogger('silent'));
    await collector.start();
    await waitFor('retention ran', () => collector.counters.retentionDaysPurged === 2, 10_000);
    await collector.stop();
    const ids: number[] = [];
    for await (const e of store.encounters()) ids.push(e.id);
    expect(ids).toEqual([3, 4]);
    await store.close();
  });
});
