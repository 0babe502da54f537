// Two `vgw collect` processes in one MQTT 5 shared-subscription group, writing into one
// PostgreSQL, each killed with SIGKILL in turn while a gateway that is itself killed 8 times
// ingests and flushes: every encounter the gateway committed is in the database exactly once.
import { describe, expect, it } from 'vitest';
import { useLocalBroker } from '../harness/broker.js';
import { killStorm } from '../harness/kill-storm.js';
import { usePostgres } from '../harness/postgres.js';
import { tempDir } from '../harness/tmp.js';

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
});
