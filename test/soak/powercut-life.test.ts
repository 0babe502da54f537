// `make soak`: 240 power-cut crash states over a longer recorded life (VGW_POWERCUT_STATES).
import { beforeAll, describe, expect, it } from 'vitest';
import { useLocalBroker } from '../harness/broker.js';
import { buildRecorder } from '../harness/powercut.js';
import { haveFaketime } from '../harness/faketime.js';
import { PHASES, powerCuts } from '../harness/powercut-life.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';

const dir = tempDir('vgw-powercut-soak-');
const broker = useLocalBroker(dir);
const lib = buildRecorder(dir);
const STATES = Number(process.env.VGW_POWERCUT_STATES ?? 240);

describe('power cuts across a whole life (soak)', () => {
  beforeAll(() => {
    requirePackage(lib !== null, 'gcc (compiles the power-cut recorder)', 'gcc');
    requirePackage(haveFaketime, 'libfaketime', 'faketime');
  });
  it(`${STATES} crash states: nothing acknowledged or committed is lost, no id or seq reused`, async () => {
    const r = await powerCuts(dir, broker(), lib!, STATES, 16);
    process.stdout.write(`power cuts (soak): ${JSON.stringify({ ...r, failures: r.failures.length })}\n`);
    expect(r.failures).toEqual([]);
    expect(r.states).toBe(STATES);
    for (const phase of PHASES) expect(Object.keys(r.phases), phase).toContain(phase);
  }, 3 * 3600_000);
});
