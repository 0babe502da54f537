// Power cuts at any moment of a gateway's and a collector's life (see harness/powercut-life.ts):
// 24 crash states here, 240 in `make soak`, each restarted, drained and checked.
import { describe, expect, it } from 'vitest';
import { useLocalBroker } from './harness/broker.js';
import { buildRecorder } from './harness/powercut.js';
import { checkCut, chooseCuts, cutPoints, haveFaketime, recordLife } from './harness/powercut-life.js';
import { tempDir } from './harness/tmp.js';

const dir = tempDir('vgw-powercut-life-');
const broker = useLocalBroker(dir);
const lib = buildRecorder(dir);
const soak = process.env.VGW_SOAK === '1';
const STATES = soak ? 240 : 24;

describe.skipIf(lib === null || !haveFaketime)('power cuts across a whole life', () => {
  it(`${STATES} crash states (schema upgrade, ingest, batch cut, publish, acks, purge, checkpoint, collector commit and ack): nothing acknowledged or committed is lost, no id or seq reused`, async () => {
    const record = await recordLife(dir, broker(), lib!, soak ? 14 : 8);
    const cuts = cutPoints(record);
    const chosen = chooseCuts(cuts, Math.ceil(STATES / 2));
    const phases = new Map<string, number>();
    const failures: string[] = [];
    let states = 0;
    let encounters = 0;
    for (const cut of chosen) {
      for (const variant of ['synced', 'some unsynced'] as const) {
        const result = await checkCut(record, cut, variant, states, broker(), 1000 + states);
        states++;
        encounters += result.encounters;
        phases.set(cut.phase, (phases.get(cut.phase) ?? 0) + 1);
        failures.push(...result.failures);
      }
    }
    process.stdout.write(`power cuts: ${states} crash states from ${cuts.length} cut points of ${record.ops.length} recorded operations; ` +
      `${encounters} encounters checked; by phase ${JSON.stringify(Object.fromEntries(phases))}; ${failures.length} failures\n`);
    expect(failures).toEqual([]);
    expect(states).toBe(STATES);
    // Every phase the issue names was cut into.
    for (const phase of [
      'gateway: start (schema upgrade, recovery, new life)', 'gateway: ingest (group commit)', 'gateway: batch cut', 'gateway: publish',
      'gateway: ack received', 'gateway: ack commit', 'gateway: retention purge', 'collector: batch commit', 'collector: ack sent',
      'collector: start, migrations',
    ]) expect([...phases.keys()], phase).toContain(phase);
  }, soak ? 3_600_000 : 400_000);
});
