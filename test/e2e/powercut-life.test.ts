// Power cuts at any moment of a gateway's and a collector's life (see harness/powercut-life.ts):
// 24 crash states here, 240 in `make soak` (test/soak/powercut-life.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { useLocalBroker } from '../harness/broker.js';
import { buildRecorder } from '../harness/powercut.js';
import { haveFaketime } from '../harness/faketime.js';
import { PHASES, powerCuts } from '../harness/powercut-life.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';

const dir = tempDir('vgw-powercut-life-');
const broker = useLocalBroker(dir);
const lib = buildRecorder(dir);

describe('power cuts across a whole life', () => {
  beforeAll(() => {
    requirePackage(lib !== null, 'gcc (compiles the power-cut recorder)', 'gcc');
    requirePackage(haveFaketime, 'libfaketime', 'faketime');
  });
  it('24 crash states (schema upgrade, ingest, batch cut, publish, acks, purge, checkpoint, collector commit and ack): nothing acknowledged or committed is lost, no id or seq reused', async () => {
    const r = await powerCuts(dir, broker(), lib!, 24, 8);
    process.stdout.write(`power cuts: ${JSON.stringify({ ...r, failures: r.failures.length })}\n`);
    expect(r.failures).toEqual([]);
    expect(r.states).toBe(24);
    for (const phase of PHASES) expect(Object.keys(r.phases), phase).toContain(phase);
  }, 400_000);
});
