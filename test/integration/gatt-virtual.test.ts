// LE connections on the project's virtual controller: unmodified noble (central) and unmodified
// bleno (peripheral), each on its own emulated controller, complete the exchange BlueTrace
// needs (as they do on BlueZ's btvirt, see btvirt.test.ts): connect, discover, read 121 bytes,
// write 132 bytes, read the link's RSSI, disconnect, with ACL fragmented to 27-byte pieces and
// completed-packet flow control.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualController } from '../../simulators/index.js';
import { gattPair } from '../harness/gatt-pair.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-gatt-');
const socketPath = join(dir, 'vc.sock');
let vc: VirtualController;
beforeAll(async () => {
  vc = new VirtualController({ socketPath });
  await vc.start();
});
afterAll(async () => {
  await vc?.stop();
});

describe('LE connections on the virtual controller', () => {
  it('carries a GATT read of 121 bytes and a write of 132 bytes between noble and bleno', async () => {
    const readValue = Buffer.alloc(121, 0x61);
    readValue.write('{"v":2,"id":"');
    const writeValue = Buffer.alloc(132, 0x62);
    const r = await gattPair(`unix:${socketPath}`, `unix:${socketPath}`, '17E033D3-490E-4BC9-9FE8-2F567643F4D3', '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', readValue, writeValue);
    expect(r.read.equals(readValue)).toBe(true);
    expect(r.peripheralGot).toHaveLength(1);
    expect(r.peripheralGot[0].equals(writeValue)).toBe(true);
    expect(r.accepted).toHaveLength(1);
    expect(r.disconnected).toEqual(r.accepted);
    expect(r.linkRssi).toBe(-55);
    const counters = vc.counters();
    // both controllers saw the connection; more ACL packets than frames: 27-byte fragments
    expect(counters.filter((c) => c.connections === 1)).toHaveLength(2);
    expect(counters.reduce((n, c) => n + c.aclOut, 0)).toBeGreaterThan(20);
    console.log(`virtual controller: GATT exchange in ${r.exchangeMs.toFixed(1)} ms`);
  });
});
