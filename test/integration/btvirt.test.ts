// Cross-check on BlueZ's own controller emulator (btvirt, Debian bluez-test-tools): the
// daemon's noble scanner and bleno beacon on btvirt controllers, with a btvirt controller
// advertising Exposure Notification frames and another scanning like a phone.
// btvirt needs AF_ALG sockets, which this kernel lacks: an LD_PRELOAD stand-in (compiled here)
// answers socket(AF_ALG) with a harmless descriptor. btvirt then reports each advertiser once
// per (re-)enable, with RSSI 127 (not available): see ../shared/ble-facts.md.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enAdvertisingData, LocalBroker } from '../../simulators/index.js';
import { computeEid } from '../../core/protocols/index.js';
import { startCollector } from '../harness/collector.js';
import { provisionTestGateway } from '../harness/identity.js';
import { sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { RawController } from '../harness/raw-controller.js';
import { gattPair } from '../harness/gatt-pair.js';
import { tempDir } from '../harness/tmp.js';

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const LE_SOCKET = '/tmp/bt-server-le';
const SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#ifndef AF_ALG
#define AF_ALG 38
#endif
static char alg[4096];
int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = dlsym(RTLD_NEXT, "socket");
  if (domain == AF_ALG) { int fd = eventfd(0, 0); if (fd >= 0 && fd < 4096) alg[fd] = 1; return fd; }
  return real(domain, type, protocol);
}
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = dlsym(RTLD_NEXT, "bind");
  if (fd >= 0 && fd < 4096 && alg[fd]) return 0;
  return real(fd, addr, len);
}
`;

const tools = which('btvirt') && which('gcc');
let skipReason = tools ? '' : 'btvirt (apt-get install bluez-test-tools) or gcc is missing';
const dir = tempDir('vgw-btvirt-');
let btvirt: ChildProcess | null = null;
let broker: LocalBroker;

beforeAll(async () => {
  if (skipReason) return;
  writeFileSync(join(dir, 'afalg.c'), SHIM);
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-o', join(dir, 'afalg.so'), join(dir, 'afalg.c'), '-ldl'], { encoding: 'utf8' });
  if (cc.status !== 0) {
    skipReason = `the AF_ALG stand-in did not compile: ${cc.stderr}`;
    return;
  }
  spawnSync('pkill', ['-x', 'btvirt']);
  // Stale sockets of an earlier btvirt would look ready before the new one listens.
  for (const name of ['le', 'bredrle', 'bredr', 'amp', 'mon']) rmSync(`/tmp/bt-server-${name}`, { force: true });
  btvirt = spawn('btvirt', ['-s'], { env: { ...process.env, LD_PRELOAD: join(dir, 'afalg.so') }, stdio: 'ignore' });
  let lastError = 'no socket';
  try {
    await waitFor('btvirt answering a Reset', async () => {
      if (!existsSync(LE_SOCKET)) return undefined;
      try {
        const probe = await RawController.connect(LE_SOCKET);
        await probe.command(0x0c03, Buffer.alloc(0), 1000);
        probe.close();
        return true;
      } catch (err) {
        lastError = (err as Error).message;
        return undefined;
      }
    }, 8000);
  } catch {
    skipReason = `btvirt does not answer HCI commands here (${lastError}); the AF_ALG stand-in did not take`;
  }
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  btvirt?.kill();
  if (btvirt) for (const name of ['le', 'bredrle', 'bredr', 'amp', 'mon']) rmSync(`/tmp/bt-server-${name}`, { force: true });
  await broker?.stop();
});

describe('cross-check on BlueZ btvirt', () => {
  it('scanner logs EN frames from a btvirt advertiser; a btvirt phone sees the venue EID and a new one after rotation', async (ctx) => {
    if (skipReason) {
      console.warn(`btvirt cross-check skipped: ${skipReason}`);
      ctx.skip();
    }
    const identityKey = '0102030405060708090a111213141516';
    const prefix = 'test-btvirt/v1';
    const identity = provisionTestGateway(dir, 'gw-btvirt', 'venue-btvirt', identityKey);
    const collector = await startCollector(broker.url, 'collector-btvirt', prefix, join(dir, 'collector.db'), [identity.record]);
    const config = writeJson(join(dir, 'gateway.json'), {
      gateway: { id: 'gw-btvirt', venue: 'venue-btvirt' },
      secretsFile: identity.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      // btvirt has no steady report rate: a long silence before the supervisor steps in
      radio: { kind: 'hci', scanner: { transport: `unix:${LE_SOCKET}`, deviceId: 0, silenceS: 600 } },
      beacon: { enabled: true, transport: `unix:${LE_SOCKET}`, deviceId: 1, exponent: 2 },
      clock: { syncCheck: 'assume-synced' },
      encounters: { silenceS: 4 },
      store: { path: join(dir, 'gateway.db'), checkpointS: 1 },
      uplink: { batchMaxAgeS: 1, resendInitialS: 1 },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    const phone = await RawController.connect(LE_SOCKET);
    const advertiser = await RawController.connect(LE_SOCKET);
    await sleep(1500); // noble and bleno power on
    await phone.startScanning();
    const rpi = Buffer.from('ebd8de78173abce46461dbc7a3e899fa', 'hex');
    await advertiser.prepareAdvertising(enAdvertisingData(rpi, Buffer.from('cfd9dbfa', 'hex')));
    // btvirt reports an advertiser when it switches advertising on: switch it on five times.
    for (let i = 0; i < 5; i++) {
      expect(await advertiser.setAdvertising(true)).toBe(0);
      await sleep(300);
      expect(await advertiser.setAdvertising(false)).toBe(0);
      await sleep(100);
    }
    await sleep(9000); // two more rotations of a K = 2 beacon
    const eids = phone.reports
      .map((r) => ({ at: r.at, i: r.data.indexOf(Buffer.from([0x16, 0xaa, 0xfe, 0x30])), data: r.data }))
      .filter((r) => r.i >= 0)
      .map((r) => ({ at: r.at, eid: r.data.subarray(r.i + 5, r.i + 13).toString('hex') }));
    const distinct = [...new Set(eids.map((e) => e.eid))];
    expect(distinct.length).toBeGreaterThanOrEqual(2);
    for (const e of eids) {
      const c = Math.floor(e.at / 1000);
      expect([c, c - 4, c + 4].map((k) => computeEid(Buffer.from(identityKey, 'hex'), 2, k).toString('hex'))).toContain(e.eid);
    }
    type Row = { temp_id: Buffer; count: number; rssi_min: number; rssi_mean: number };
    const row = await waitFor('the EN encounter at the collector', () => {
      const r = collector.store.db.prepare('SELECT * FROM encounters').all() as Row[];
      return r.find((x) => x.temp_id.equals(rpi));
    }, 20_000);
    expect(row.count).toBeGreaterThanOrEqual(1);
    expect(row.count).toBeLessThanOrEqual(5);
    expect(row.rssi_min).toBe(127); // btvirt: RSSI not available
    phone.close();
    advertiser.close();
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
  });

  it('an unmodified noble central and bleno peripheral on two btvirt controllers read 121 bytes and write 132 (as on the virtual controller)', async (ctx) => {
    if (skipReason) {
      console.warn(`btvirt cross-check skipped: ${skipReason}`);
      ctx.skip();
    }
    const readValue = Buffer.alloc(121, 0x61);
    const writeValue = Buffer.alloc(132, 0x62);
    const r = await gattPair(`unix:${LE_SOCKET}`, `unix:${LE_SOCKET}`, '17E033D3-490E-4BC9-9FE8-2F567643F4D3', '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', readValue, writeValue);
    expect(r.read.equals(readValue)).toBe(true);
    expect(r.peripheralGot.map((b) => b.toString('hex'))).toEqual([writeValue.toString('hex')]);
    expect(r.accepted).toHaveLength(1);
    expect(r.disconnected).toEqual(r.accepted);
    console.log(`btvirt: GATT exchange in ${r.exchangeMs.toFixed(1)} ms, link RSSI ${r.linkRssi}`);
  });
});
