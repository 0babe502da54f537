// `make soak`: the long kill -9 storm, the collector killed too (VGW_STORM_KILLS, default 120).
import { describe, expect, it } from 'vitest';
import { killStorm } from '../harness/kill-storm.js';
import { useLocalBroker } from '../harness/broker.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-storm-soak-');
const KILLS = Number(process.env.VGW_STORM_KILLS ?? 120);
const broker = useLocalBroker(dir);

describe('kill -9 storm (soak)', () => {
  it(`${KILLS} daemon SIGKILLs and a collector SIGKILL every 10: nothing committed lost, nothing doubled, integrity ok at every kill`, async () => {
    const r = await killStorm({ dir, broker: broker(), kills: KILLS, collectorKillEvery: 10, seed: 4242, speed: 30 });
    process.stdout.write(`kill storm (soak): ${JSON.stringify(r)}\n`);
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.atCollector).toBe(r.committed);
    expect(r.collectorKills).toBe(Math.floor(KILLS / 10));
  }, 3 * 3600_000);
});
