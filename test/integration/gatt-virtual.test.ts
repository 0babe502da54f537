// LE connections on the project's virtual controller: unmodified noble (central) and unmodified
// bleno (peripheral), each on its own emulated controller, complete the exchange BlueTrace
// needs (as they do on BlueZ's btvirt, see btvirt.test.ts): connect, discover, read 121 bytes,
// write 132 bytes, read the link's RSSI, disconnect, with ACL fragmented to 27-byte pieces and
// completed-packet flow control.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualController } from '../../simulators/index.js';
import { blenoOn, closeNoble, gattPair, nobleOn } from '../harness/gatt-pair.js';
import { waitFor, sleep } from '../harness/processes.js';
import { issueTempIds, newUid, readPayload } from '../../core/bluetrace/index.js';
import { createLogger } from '../../core/log/index.js';
import type { Sighting } from '../../core/protocols/index.js';
import { BluetraceCentral, compactUuid, type NobleCentral } from '../../daemon/radio/index.js';
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

  it("the gateway's central never logs the unit's own advert: counted as ownAdverts until its address is known, skipped after", async () => {
    const SERVICE = 'B82AB3FC-1595-4F6A-80F0-FE094CC218F9';
    const CHARACTERISTIC = '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804';
    const transport = `unix:${socketPath}`;
    const venueTempId = issueTempIds(Buffer.alloc(32, 5), newUid(), Math.floor(Date.now() / 1000), 1)[0].tempId;
    // this process's bleno plays the unit's own advertising controller, serving the venue's read
    const bleno = await blenoOn(transport);
    await new Promise<void>((resolve, reject) => {
      const c = new bleno.Characteristic({
        uuid: compactUuid(CHARACTERISTIC),
        properties: ['read', 'write'],
        onReadRequest: (offset: number, cb: (code: number, data?: Buffer) => void) => cb(0, readPayload(venueTempId, 'ID_PL', 'venue-gateway').subarray(offset)),
        onWriteRequest: (_d: Buffer, _o: number, _n: boolean, cb: (code: number) => void) => cb(0),
      });
      bleno.setServices([new bleno.PrimaryService({ uuid: compactUuid(SERVICE), characteristics: [c] })], (err) => (err ? reject(err) : resolve()));
    });
    await new Promise<void>((resolve, reject) => bleno.startAdvertising('vgw', [compactUuid(SERVICE)], (err) => (err ? reject(err) : resolve())));
    const central = async (ownAddress: () => string | null, scanMs: number | null) => {
      const logged: Sighting[] = [];
      const c = new BluetraceCentral({
        serviceUuid: SERVICE, characteristicUuid: CHARACTERISTIC, org: 'ID_PL', model: 'venue-gateway', connectionTimeoutMs: 3000,
        maxConnections: 2, skipMs: 100_000, venueTempId: () => venueTempId, now: Date.now, onExchange: (x) => logged.push(x), ownAddress,
      }, createLogger('silent'));
      const noble = await nobleOn(transport);
      c.attach(noble as unknown as NobleCentral);
      await noble.startScanningAsync([], true);
      if (scanMs === null) await waitFor('the read of the unit itself', () => (c.counters.ownAdverts > 0 ? true : undefined), 10_000);
      else await sleep(scanMs);
      await noble.stopScanningAsync();
      closeNoble(noble);
      return { counters: c.counters, logged };
    };
    // before bleno has told its address, the read of the venue's own temp ID gives it away
    const before = await central(() => null, null);
    expect(before.counters).toMatchObject({ attempts: 1, ownAdverts: 1, exchanges: 0 });
    expect(before.logged).toEqual([]);
    // once known, the unit's address is never connected to
    expect(bleno.address).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const after = await central(() => bleno.address, 2000);
    expect(after.counters).toMatchObject({ attempts: 0, ownAdverts: 0, exchanges: 0 });
    expect(after.logged).toEqual([]);
    bleno.stopAdvertising();
  });
});
