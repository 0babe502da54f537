// Cross-check on BlueZ's own controller emulator (btvirt, Debian bluez-test-tools): the
// daemon's noble scanner and bleno beacon on btvirt controllers, with a btvirt controller
// advertising Exposure Notification frames and another scanning like a phone.
// btvirt needs AF_ALG sockets, which this kernel lacks: an LD_PRELOAD stand-in (compiled here)
// answers socket(AF_ALG) with a harmless descriptor. btvirt then reports each advertiser once
// per (re-)enable, with RSSI 127 (not available): see ../shared/ble-facts.md.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enAdvertisingData, LocalBroker } from '../../simulators/index.js';
import { computeEid } from '../../core/protocols/index.js';
import {
  decodeMetadata, decryptTempId, issueTempIds, newPayloadRefusals, newUid, parsePayload, readPayload, ROLE_CENTRAL, ROLE_PERIPHERAL, writePayload,
} from '../../core/bluetrace/index.js';
import { compactUuid } from '../../daemon/radio/index.js';
import { parseStatus, type BluetraceStatus, type LocalStatus } from '../../core/wire/index.js';
import { collectorSqlite, startCollector } from '../harness/collector.js';
import { provisionTestGateway } from '../harness/identity.js';
import { runVgw, sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { RawController } from '../harness/raw-controller.js';
import { blenoOn, closeNoble, gattPair, nobleOn, type NoblePeripheral } from '../harness/gatt-pair.js';
import { onPath, requirePackage } from '../harness/system-packages.js';
import { tempDir } from '../harness/tmp.js';

const SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#ifndef AF_ALG
#define AF_ALG 38
#endif
static char alg[4096];
/* btvirt serves on fixed paths (/tmp/bt-server-le, ...): moved into VGW_BTVIRT_DIR, so each test
   run has its own emulator and stops only it. */
static const char *moved(const char *path, char *buf, size_t len) {
  const char *dir = getenv("VGW_BTVIRT_DIR");
  if (!dir || strncmp(path, "/tmp/bt-server-", 15) != 0) return path;
  snprintf(buf, len, "%s/%s", dir, path + 5);
  return buf;
}
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
  if (addr && addr->sa_family == AF_UNIX) {
    struct sockaddr_un un;
    char buf[sizeof un.sun_path];
    memcpy(&un, addr, len < sizeof un ? len : sizeof un);
    const char *path = moved(((const struct sockaddr_un *) addr)->sun_path, buf, sizeof buf);
    if (path == buf) {
      strncpy(un.sun_path, path, sizeof un.sun_path - 1);
      un.sun_path[sizeof un.sun_path - 1] = 0;
      return real(fd, (const struct sockaddr *) &un, sizeof un);
    }
  }
  return real(fd, addr, len);
}
int unlink(const char *path) {
  static int (*real)(const char *);
  if (!real) real = dlsym(RTLD_NEXT, "unlink");
  char buf[108];
  return real(moved(path, buf, sizeof buf));
}
`;

const dir = tempDir('vgw-btvirt-');
/** Where this run's btvirt serves (the shim moves its /tmp/bt-server-* here). */
const LE_SOCKET = join(dir, 'bt-server-le');
let btvirt: ChildProcess | null = null;
let broker: LocalBroker;

beforeAll(async () => {
  requirePackage(onPath('btvirt'), 'btvirt', 'bluez-test-tools');
  requirePackage(onPath('gcc'), 'gcc (compiles the AF_ALG stand-in)', 'gcc');
  writeFileSync(join(dir, 'afalg.c'), SHIM);
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-o', join(dir, 'afalg.so'), join(dir, 'afalg.c'), '-ldl'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`the AF_ALG stand-in did not compile: ${cc.stderr}`);
  // its own folder: no other run's btvirt, nor a stale socket, can answer for it
  btvirt = spawn('btvirt', ['-s'], { env: { ...process.env, LD_PRELOAD: join(dir, 'afalg.so'), VGW_BTVIRT_DIR: dir }, stdio: 'ignore' });
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
    throw new Error(`btvirt does not answer HCI commands here (${lastError}); the AF_ALG stand-in did not take`);
  }
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  btvirt?.kill(); // the process this file started, by its id; nothing else on the machine
  await broker?.stop();
});

describe('cross-check on BlueZ btvirt', () => {
  it('scanner logs EN frames from a btvirt advertiser; a btvirt phone sees the venue EID and a new one after rotation', async () => {
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
    const poweredOn = (what: string) => daemon.output().split('\n').some((line) => line.includes(what) && line.includes('"poweredOn"'));
    await waitFor('noble and bleno powered on', () => poweredOn('scanner controller state') && poweredOn('advertising controller state'), 20_000);
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
    const beaconEids = () => phone.reports
      .map((r) => ({ at: r.at, i: r.data.indexOf(Buffer.from([0x16, 0xaa, 0xfe, 0x30])), data: r.data }))
      .filter((r) => r.i >= 0)
      .map((r) => ({ at: r.at, eid: r.data.subarray(r.i + 5, r.i + 13).toString('hex') }));
    // a K = 2 beacon rotates every 4 s
    await waitFor('the beacon seen under two EIDs', () => new Set(beaconEids().map((e) => e.eid)).size >= 2, 20_000);
    const eids = beaconEids();
    for (const e of eids) {
      const c = Math.floor(e.at / 1000);
      expect([c, c - 4, c + 4].map((k) => computeEid(Buffer.from(identityKey, 'hex'), 2, k).toString('hex'))).toContain(e.eid);
    }
    type Row = { temp_id: Buffer; count: number; rssi_min: number; rssi_mean: number };
    const row = await waitFor('the EN encounter at the collector', () => {
      const r = collectorSqlite(collector).prepare('SELECT * FROM encounters').all() as Row[];
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

  it('an unmodified noble central and bleno peripheral on two btvirt controllers read 121 bytes and write 132 (as on the virtual controller)', async () => {
    const readValue = Buffer.alloc(121, 0x61);
    const writeValue = Buffer.alloc(132, 0x62);
    const r = await gattPair(`unix:${LE_SOCKET}`, `unix:${LE_SOCKET}`, '17E033D3-490E-4BC9-9FE8-2F567643F4D3', '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', readValue, writeValue);
    expect(r.read.equals(readValue)).toBe(true);
    expect(r.peripheralGot.map((b) => b.toString('hex'))).toEqual([writeValue.toString('hex')]);
    expect(r.accepted).toHaveLength(1);
    expect(r.disconnected).toEqual(r.accepted);
    console.log(`btvirt: GATT exchange in ${r.exchangeMs.toFixed(1)} ms, link RSSI ${r.linkRssi}`);
  });

  it("the gateway's two BlueTrace roles exchange with phones on btvirt (the phones run unmodified noble and bleno)", async () => {
    const SERVICE = 'B82AB3FC-1595-4F6A-80F0-FE094CC218F9';
    const CHARACTERISTIC = '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804';
    const key = randomBytes(32);
    const nowS = Math.floor(Date.now() / 1000);
    // phone A is a peripheral (this process's bleno): the gateway's central must find it;
    // phone B is a central (a noble of its own): it must find the gateway's peripheral
    const a = { uid: newUid(), model: 'Pixel 7' };
    const b = { uid: newUid(), model: 'SM-A515F' };
    const aTempId = issueTempIds(key, a.uid, nowS, 1)[0].tempId;
    const bTempId = issueTempIds(key, b.uid, nowS, 1)[0].tempId;
    const identity = provisionTestGateway(dir, 'gw-btvirt-bt', 'venue-btvirt-bt', '0102030405060708090a111213141516');
    const prefix = 'test-btvirt-bt/v2';
    const collector = await startCollector(broker.url, 'collector-btvirt-bt', prefix, join(dir, 'collector-bt.db'), [identity.record], undefined, key);
    const config = writeJson(join(dir, 'gateway-bt.json'), {
      gateway: { id: 'gw-btvirt-bt', venue: 'venue-btvirt-bt' },
      secretsFile: identity.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      radio: { kind: 'hci', scanner: { transport: `unix:${LE_SOCKET}`, deviceId: 0, silenceS: 600 } },
      beacon: { enabled: true, transport: `unix:${LE_SOCKET}`, deviceId: 1, exponent: 2 },
      bluetrace: { enabled: true, serviceUuid: SERVICE, characteristicUuid: CHARACTERISTIC, org: 'ID_PL', peripheral: { sliceS: 0.5, connectionTimeoutS: 3 }, central: { connectionTimeoutS: 3 } },
      clock: { syncCheck: 'assume-synced' },
      encounters: { silenceS: 4, bluetraceSilenceS: 3 },
      store: { path: join(dir, 'gateway-bt.db'), checkpointS: 1 },
      uplink: { batchMaxAgeS: 1, resendInitialS: 1 },
      health: { controlSocket: join(dir, 'gateway-bt.ctl') },
    });
    const daemon = spawnVgw(['run', '-c', config]);

    // Phone A: serves {v, id, o, mp}, keeps what the gateway writes; btvirt reports an advertiser
    // when it switches advertising on, so it re-enables every second, as the gateway's slices do.
    const bleno = await blenoOn(`unix:${LE_SOCKET}`);
    const aGot: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const c = new bleno.Characteristic({
        uuid: compactUuid(CHARACTERISTIC),
        properties: ['read', 'write'],
        onReadRequest: (offset: number, cb: (code: number, data?: Buffer) => void) => cb(0, readPayload(aTempId, 'ID_PL', a.model).subarray(offset)),
        onWriteRequest: (data: Buffer, _o: number, _n: boolean, cb: (code: number) => void) => {
          aGot.push(Buffer.from(data));
          cb(0);
        },
      });
      bleno.setServices([new bleno.PrimaryService({ uuid: compactUuid(SERVICE), characteristics: [c] })], (err) => (err ? reject(err) : resolve()));
    });
    let advertising = true;
    const readvertise = (async () => {
      while (advertising) {
        await new Promise<void>((r) => bleno.startAdvertising('phone-a', [compactUuid(SERVICE)], () => r()));
        await sleep(1000);
        await new Promise<void>((r) => bleno.stopAdvertising(() => r()));
      }
    })();

    // Phone B: scans for the service, connects to what is not phone A, reads, writes its own.
    const noble = await nobleOn(`unix:${LE_SOCKET}`);
    let bRead: Buffer | null = null;
    const bDone = new Promise<void>((resolve) => {
      let busy = false;
      noble.on('discover', (p) => {
        const peripheral = p as NoblePeripheral;
        if (busy || bRead || peripheral.address === bleno.address) return;
        busy = true;
        void (async () => {
          try {
            await peripheral.connectAsync();
            const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([compactUuid(SERVICE)], [compactUuid(CHARACTERISTIC)]);
            const read = await characteristics[0].readAsync();
            await characteristics[0].writeAsync(writePayload(bTempId, 'ID_PL', b.model, -58), false);
            bRead = read;
            await peripheral.disconnectAsync();
            resolve();
          } catch {
            // the gateway's slice ended or the link dropped: try the next advert
          } finally {
            busy = false;
          }
        })();
      });
    });
    await noble.startScanningAsync([compactUuid(SERVICE)], true);
    await Promise.race([bDone, sleep(30_000)]);
    const status = async () => parseStatus(JSON.parse((await runVgw(['status', '-c', config, '--json'])).stdout), 'vgw status') as LocalStatus;
    await waitFor('the gateway to write to phone A', () => (aGot.length > 0 ? true : undefined), 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; phone B read ${bRead ? 'the gateway' : 'nothing'}; the gateway: ${JSON.stringify((await status()).counters.bluetrace)}`);
    });
    advertising = false;
    await readvertise;
    await noble.stopScanningAsync();
    closeNoble(noble);

    // What the phones kept: the venue's temp ID, which opens to the venue's registered UID.
    expect(bRead, 'phone B read the gateway').not.toBeNull();
    const venueRead = parsePayload(bRead!, 'read', newPayloadRefusals());
    expect(venueRead).toMatchObject({ org: 'ID_PL', model: 'venue-gateway' });
    expect(decryptTempId(key, venueRead!.tempId)?.uid).toBe(identity.record.bluetraceUid);
    const venueWrite = parsePayload(aGot[0], 'write', newPayloadRefusals());
    expect(decryptTempId(key, venueWrite!.tempId)?.uid).toBe(identity.record.bluetraceUid);
    // btvirt reports no RSSI: the phone is told the weakest signal, not 127 (which it would read as the strongest)
    expect(venueWrite!.rs).toBe(-127);
    // What the gateway logged reached the backend: A as met by its central, B by its peripheral.
    type Row = { temp_id: Buffer; metadata: Buffer };
    const rows = await waitFor('both BlueTrace encounters at the collector', () => {
      const r = collectorSqlite(collector).prepare('SELECT temp_id, metadata FROM encounters WHERE protocol = 1').all() as Row[];
      return r.length >= 2 ? r : undefined;
    }, 20_000);
    const byUid = new Map(rows.map((r) => [decryptTempId(key, r.temp_id)?.uid, decodeMetadata(r.metadata)]));
    expect([...byUid.keys()].sort()).toEqual([a.uid, b.uid].sort()); // nothing else, not the venue itself
    expect(byUid.get(a.uid)).toMatchObject({ role: ROLE_CENTRAL, model: a.model, org: 'ID_PL' });
    expect(byUid.get(b.uid)).toMatchObject({ role: ROLE_PERIPHERAL, model: b.model, org: 'ID_PL', rs: -58 });
    const bt = (await status()).counters.bluetrace as BluetraceStatus;
    console.log(`btvirt BlueTrace: peripheral ${JSON.stringify(bt.peripheral)}, central ${JSON.stringify(bt.central)}`);
    expect(bt.peripheral!.exchanges).toBeGreaterThanOrEqual(1);
    expect(bt.central!.exchanges).toBeGreaterThanOrEqual(1);
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
  });
});
