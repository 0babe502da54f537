// The short form of the kill -9 storm (the long one, with collector kills, is in `make soak`).
import { describe, expect, it } from 'vitest';
import { killStorm } from '../harness/kill-storm.js';
import { useLocalBroker } from '../harness/broker.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-storm-');
const broker = useLocalBroker(dir);

describe('kill -9 storm', () => {
  it('12 SIGKILLs at random moments of ingest and flush: every committed encounter at the collector once, the database intact at every kill', async () => {
    const r = await killStorm({ dir, broker: broker(), kills: 12, collectorKillEvery: 0, seed: 808, speed: 30 });
    process.stdout.write(`kill storm: ${JSON.stringify(r)}\n`);
    expect(r.lives).toBe(13);
    expect(r.committed).toBeGreaterThan(50);
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.atCollector).toBe(r.committed);
    // Every phone in range for a second of some life's run was recorded, and there were many.
    expect(r.missedWhileUp).toBe(0);
    expect(r.heardWhileUp).toBeGreaterThan(20);
  }, 300_000);
});
