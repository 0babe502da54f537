// The real radio path: the project's virtual controller → H4 over a unix socket → unmodified
// noble inside the daemon (a child process) → encounters in SQLite → MQTT → the collector.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, LocalBroker } from '../../simulators/index.js';
import { requestStatus } from '../../collector/pull.js';
import { createLogger } from '../../core/log/index.js';
import { computeEid, decodeAdvertisement, newDropCounters } from '../../core/protocols/index.js';
import { advertisingReportEvents, readHciCapture } from '../../simulators/index.js';
import { createH4Framer, hciGuardCounters, forcePassiveScan, NobleScanner, parseTransport } from '../../daemon/radio/index.js';
import { advertisingReport, CrowdOptions, VirtualController } from '../../simulators/index.js';
import { collectorSqlite, startCollector, testBroker } from '../harness/collector.js';
import { gatewayKeyOf, provisionTestGateway, TEST_BACKEND } from '../harness/identity.js';
import { crowdEnd, crowdTruth } from '../harness/crowd-truth.js';
import { runVgw, sleep, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { hasReference, REFERENCE_DIR } from '../harness/reference.js';
import { RawController } from '../harness/raw-controller.js';
import { onPath, requirePackage } from '../harness/system-packages.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-radio-');
let broker: LocalBroker;
beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  await broker?.stop();
});

describe('H4 framing and transports', () => {
  it('reassembles packets whatever the chunking, and resyncs past garbage', () => {
    const packets = [
      Buffer.from('040e0401031c00', 'hex'), // Command Complete (Reset)
      Buffer.from('043e0c02010301aabbccddeeff00c5', 'hex'), // LE Advertising Report, empty AD
      Buffer.from('0201200500010002aabb', 'hex'), // ACL, 5-byte payload
    ];
    const stream = Buffer.concat(packets);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 10 }), (cuts) => {
        const got: Buffer[] = [];
        const feed = createH4Framer((p) => got.push(p));
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        let at = 0;
        for (const c of [...points, stream.length]) {
          feed(stream.subarray(at, c));
          at = c;
        }
        expect(got.map((p) => p.toString('hex'))).toEqual(packets.map((p) => p.toString('hex')));
      }),
    );
    const got: Buffer[] = [];
    const counters = { packets: 0, resyncBytes: 0 };
    createH4Framer((p) => got.push(p), counters)(Buffer.concat([Buffer.from([0x00, 0xff]), packets[0]]));
    expect(got).toHaveLength(1);
    expect(counters.resyncBytes).toBe(2);
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (chunks) => {
        const feed = createH4Framer(() => undefined);
        for (const c of chunks) feed(Buffer.from(c));
      }),
      { numRuns: 2000 },
    );
  });

  it('parses transport strings and names the fix', () => {
    expect(parseTransport('hci:0')).toEqual({ kind: 'hci', devId: 0 });
    expect(parseTransport('unix:/run/vc.sock')).toEqual({ kind: 'unix', path: '/run/vc.sock' });
    expect(parseTransport('tcp:127.0.0.1:9000')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9000 });
    expect(parseTransport('serial:/dev/ttyACM0')).toEqual({ kind: 'serial', path: '/dev/ttyACM0', baudRate: 1_000_000 });
    expect(parseTransport('serial:/dev/ttyUSB0:115200')).toEqual({ kind: 'serial', path: '/dev/ttyUSB0', baudRate: 115200 });
    expect(() => parseTransport('bluetooth')).toThrow(/use hci:0, serial:/);
    expect(() => parseTransport('tcp:host')).toThrow(/expected tcp:host:port/);
  });

  it("rewrites noble's active scan request to passive", () => {
    // LE Set Scan Parameters as noble writes it: type 0x01 (active)
    const cmd = Buffer.from('010b2007011000100000 00'.replace(/ /g, ''), 'hex');
    expect(forcePassiveScan(cmd)[4]).toBe(0x00);
    expect(forcePassiveScan(cmd).subarray(5).equals(cmd.subarray(5))).toBe(true);
    const other = Buffer.from('01030c00', 'hex');
    expect(forcePassiveScan(other)).toBe(other);
  });
});

describe('noble over the virtual controller', () => {
  it('known phones become exactly their encounters, RSSI statistics included', async () => {
    const socketPath = join(dir, 'vc.sock');
    const crowd: CrowdOptions = { seed: 505, phones: 12, arrivalsPerMinute: 60, minDwellS: 4, maxDwellS: 10, anchor: Date.now() + 4000 };
    const vc = new VirtualController({ socketPath, crowd });
    await vc.start();
    const prefix = 'test-radio/v1';
    const identity = provisionTestGateway(dir, 'gw-radio', 'venue-radio');
    const collector = await startCollector(broker.url, 'collector-radio', prefix, join(dir, 'collector.db'), [identity.record]);
    const config = writeJson(join(dir, 'gateway.json'), {
      gateway: { id: 'gw-radio', venue: 'venue-radio' },
      secretsFile: identity.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0 } },
      encounters: { silenceS: 3 },
      store: { path: join(dir, 'gateway.db'), checkpointS: 0.25 },
      uplink: { batchMaxAgeS: 1, resendInitialS: 1 },
    });
    const truth = crowdTruth(crowd);
    const daemon = spawnVgw(['run', '-c', config]);
    await sleep(Math.max(0, crowdEnd(truth) - Date.now()) + 3000 + 2000);
    type Row = { temp_id: Buffer; count: number; rssi_min: number; rssi_max: number; rssi_mean: number; first_seen: number; last_seen: number };
    const rows = await waitFor('encounters via noble', () => {
      const r = collectorSqlite(collector).prepare('SELECT * FROM encounters ORDER BY id').all() as Row[];
      return r.length >= truth.size ? r : undefined;
    }, 30_000);
    expect(daemon.output()).toMatch(/"state":"poweredOn"/);
    expect(rows).toHaveLength(truth.size);
    for (const r of rows) {
      const t = truth.get(r.temp_id.toString('hex'));
      expect(t, 'an RPI the crowd sent').toBeDefined();
      expect(r.count).toBe(t!.count);
      expect(r.rssi_min).toBe(t!.rssiMin);
      expect(r.rssi_max).toBe(t!.rssiMax);
      expect(r.rssi_mean).toBe(Math.round((t!.rssiSum / t!.count) * 10) / 10);
      // stamped on arrival through the socket: within a second or two of the model's times
      expect(Math.abs(r.first_seen - t!.first)).toBeLessThan(2000);
      expect(Math.abs(r.last_seen - t!.last)).toBeLessThan(2000);
    }
    // The controller was asked for passive scanning although noble asks for active.
    expect(vc.counters()[0].unknown_commands).toBe(0);
    expect(await stopGracefully(daemon)).toBe(0);
    await collector.stop();
    await vc.stop();
  });
});

describe('venue beacon with bleno over the virtual controller', () => {
  const identityKey = '0102030405060708090a111213141516';

  async function runBeacon(name: string, syncCheck: string) {
    const socketPath = join(dir, `${name}.sock`);
    const vc = new VirtualController({ socketPath });
    await vc.start();
    const config = writeJson(join(dir, `${name}.json`), {
      gateway: { id: `gw-${name}`, venue: `venue-${name}` },
      secretsFile: provisionTestGateway(dir, `gw-${name}`, `venue-${name}`, identityKey).secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: `test-${name}/v1`,
      radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0 } },
      beacon: { enabled: true, transport: `unix:${socketPath}`, deviceId: 1, exponent: 2, txPowerDbm: -20 },
      clock: { syncCheck },
      store: { path: join(dir, `${name}.db`) },
      // its own socket: a daemon left behind by a failed test must not answer for this one
      health: { controlSocket: join(dir, `${name}.ctl`) },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    // A phone: noble on a third controller of the same medium.
    const phone = new NobleScanner({ transport: { kind: 'unix', path: socketPath }, deviceId: 2 }, createLogger('silent'));
    const seen: Array<{ eid: string; at: number; txPower: number }> = [];
    phone.start((data, _rssi, _address, at) => {
      const i = data.indexOf(Buffer.from([0x16, 0xaa, 0xfe, 0x30]));
      if (i >= 0) seen.push({ eid: data.subarray(i + 5, i + 13).toString('hex'), at, txPower: data.readInt8(i + 4) });
    });
    return { vc, daemon, phone, seen, config };
  }

  it('advertises the EID of the current quantum, rotates on schedule, and the backend resolves it', async () => {
    const { vc, daemon, phone, seen, config } = await runBeacon('beacon', 'assume-synced');
    // K = 2: a new EID every 4 s; three heard means at least two rotations seen
    await waitFor('three EIDs heard', () => new Set(seen.map((s) => s.eid)).size >= 3, 30_000);
    for (const s of seen) {
      // the EID heard is the one computed for the moment it was heard (± one rotation at the boundary)
      const c = Math.floor(s.at / 1000);
      const candidates = [c, c - 4, c + 4].map((k) => computeEid(Buffer.from(identityKey, 'hex'), 2, k).toString('hex'));
      expect(candidates).toContain(s.eid);
      expect(s.txPower).toBe(-20);
    }
    const registry = writeJson(join(dir, 'registry.json'), [{ venue: 'venue-beacon', gateway: 'gw-beacon', identityKey, exponent: 2 }]);
    const last = seen[seen.length - 1];
    const r = await runVgw(['beacon', 'resolve', '--eid', last.eid, '--time', String(last.at), '--registry', registry]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ venue: 'venue-beacon', gateway: 'gw-beacon' });
    const show = await runVgw(['beacon', 'show', '-c', config, '--json']);
    expect(show.status).toBe(0);
    const status = JSON.parse(show.stdout);
    expect(status).toMatchObject({ state: 'advertising', rotationFailures: 0 });
    expect(status.rotations).toBeGreaterThanOrEqual(2);
    expect(status.nextRotationAt).toBeGreaterThan(Date.now() - 1000);
    expect(status.nextRotationAt % 4000).toBe(0);
    expect(daemon.output()).not.toContain(last.eid);
    phone.stop();
    expect(await stopGracefully(daemon)).toBe(0);
    await vc.stop();
  });

  it('pauses the beacon while the clock is not synchronised (the default policy)', async () => {
    const { vc, daemon, phone, seen, config } = await runBeacon('unsynced', 'assume-unsynced');
    await sleep(5000);
    expect(seen).toHaveLength(0);
    const show = await runVgw(['beacon', 'show', '-c', config, '--json']);
    expect(JSON.parse(show.stdout)).toMatchObject({ state: 'paused', eid: null });
    phone.stop();
    expect(await stopGracefully(daemon)).toBe(0);
    await vc.stop();
  });
});

describe.skipIf(!hasReference)('replay of real HCI captures through noble (reads ../shared/reference in place: no licence to copy)', () => {
  async function replay(file: string) {
    const events = advertisingReportEvents(readHciCapture(readFileSync(join(REFERENCE_DIR, 'captures', file)))).map((r) => r.packet);
    const socketPath = join(dir, `${file}.sock`);
    const vc = new VirtualController({ socketPath, replay: events });
    await vc.start();
    const scanner = new NobleScanner({ transport: { kind: 'unix', path: socketPath }, deviceId: 3 }, createLogger('silent'));
    const drops = newDropCounters();
    const sightings: Array<{ rpi: string; aem: string; rssi: number }> = [];
    let reports = 0;
    scanner.start((data, rssi, address, time) => {
      reports++;
      const s = decodeAdvertisement(data, rssi, address, time, drops);
      if (s) sightings.push({ rpi: s.tempId.toString('hex'), aem: s.metadata.toString('hex'), rssi: s.rssi });
    });
    await waitFor(`${events.length} reports`, () => reports >= events.length, 10_000);
    await sleep(200);
    scanner.stop();
    await vc.stop();
    return { events: events.length, reports, sightings, drops };
  }

  it('decodes the two real Exposure Notification frames of the Android capture, and nothing else', async () => {
    const r = await replay('airbily_hci_2021_with_en.pcapng');
    expect(r.events).toBe(5);
    expect(r.reports).toBe(5);
    expect(r.sightings).toEqual([
      { rpi: 'ebd8de78173abce46461dbc7a3e899fa', aem: 'cfd9dbfa', rssi: -74 },
      { rpi: 'ebd8de78173abce46461dbc7a3e899fa', aem: 'cfd9dbfa', rssi: -74 },
    ]);
    expect(Object.values(r.drops).every((n) => n === 0)).toBe(true);
  });

  it.each([
    ['yeelock_btsnoop_hci_2019.log', 26],
    ['blefun_btsnoop_hci_2019.log', 382],
  ])('%s: every advertising report reaches the decoder, none is mistaken for a temp ID', async (file, expected) => {
    const r = await replay(file);
    expect(r.events).toBe(expected);
    expect(r.reports).toBe(expected);
    expect(r.sightings).toEqual([]);
  });
});

describe('radio supervisor', () => {
  it('recovers a wedged controller by escalating, and survives the controller going away and coming back', async () => {
    const socketPath = join(dir, 'sup.sock');
    const crowd = (): CrowdOptions => ({ seed: 606, phones: 0, arrivalsPerMinute: 120, minDwellS: 5, maxDwellS: 10, anchor: Date.now() });
    let vc = new VirtualController({ socketPath, crowd: crowd() });
    await vc.start();
    const prefix = 'test-sup/v1';
    const sup = provisionTestGateway(dir, 'gw-sup', 'venue-sup');
    const config = writeJson(join(dir, 'sup.json'), {
      gateway: { id: 'gw-sup', venue: 'venue-sup' },
      secretsFile: sup.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0, silenceS: 2 } },
      store: { path: join(dir, 'sup.db') },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    type Radio = { state: string; reports: number; recoverRestartScan: number; recoverReset: number; recoverReopen: number; recovered: number };
    const radio = async (): Promise<Radio> => {
      const status = await requestStatus({
        control: TEST_BACKEND,
        broker: testBroker(broker.url, `sup-probe-${Math.random()}`),
        prefix, venue: 'venue-sup', gateway: 'gw-sup', timeoutMs: 5000, gatewayKeys: [gatewayKeyOf(sup)],
      });
      return (status.counters as { radio: Radio }).radio;
    };
    const before = await waitFor('reports flowing', async () => ((await radio()).reports > 20 ? radio() : undefined), 20_000);

    vc.wedgeAll();
    const recovered = await waitFor('recovery from a wedged controller', async () => {
      const r = await radio();
      return r.recovered >= 1 ? r : undefined;
    }, 30_000);
    expect(recovered.recoverRestartScan).toBeGreaterThanOrEqual(1); // tried first, not enough
    expect(recovered.recoverReset).toBeGreaterThanOrEqual(1); // the reset un-wedged it
    expect(recovered.reports).toBeGreaterThan(before.reports);

    await vc.stop(); // the controller disappears
    await waitFor('scanner sees the controller gone', async () => ((await radio()).state === 'poweredOff' ? true : undefined), 15_000);
    expect(daemon.proc.exitCode).toBeNull();
    vc = new VirtualController({ socketPath, crowd: crowd() });
    await vc.start();
    const back = await waitFor('reports after the controller returns', async () => {
      const r = await radio();
      return r.state === 'poweredOn' && r.reports > recovered.reports + 20 ? r : undefined;
    }, 30_000);
    expect(back.state).toBe('poweredOn');
    expect(await stopGracefully(daemon)).toBe(0);
    await vc.stop();
  });
});

describe('malformed HCI events through the real parsing path (fast-check)', () => {
  it('random and truncated events reach noble without a crash; valid reports still decode after them', async () => {
    const socketPath = join(dir, 'fuzz.sock');
    const vc = new VirtualController({ socketPath });
    await vc.start();
    const scanner = new NobleScanner({ transport: { kind: 'unix', path: socketPath }, deviceId: 4 }, createLogger('silent'));
    const drops = newDropCounters();
    const sightings: string[] = [];
    let reports = 0;
    scanner.start((data, rssi, address, time) => {
      reports++;
      const s = decodeAdvertisement(data, rssi, address, time, drops);
      if (s) sightings.push(s.tempId.toString('hex'));
    });
    await waitFor('scanning', () => scanner.state === 'poweredOn', 10_000);
    await sleep(300);
    const event = (code: number, params: Uint8Array) => Buffer.concat([Buffer.from([0x04, code, params.length]), params]);
    const valid = (i: number) => {
      const rpi = Buffer.alloc(16, i);
      return advertisingReport(Buffer.concat([Buffer.from('03036ffd17166ffd', 'hex'), rpi, Buffer.alloc(4)]), -60, 'c0:00:00:00:00:01');
    };
    const arbitraryEvent = fc.oneof(
      // LE Advertising Report with random content: counts, lengths and RSSI that do not add up
      fc.uint8Array({ maxLength: 250 }).map((b) => event(0x3e, Buffer.concat([Buffer.from([0x02]), b]))),
      // a real report cut short, its length byte fixed so only the inside is inconsistent
      fc.integer({ min: 1, max: 40 }).map((cut) => {
        const v = valid(1);
        const params = v.subarray(3, Math.max(4, v.length - cut));
        return event(0x3e, params);
      }),
      // any other event code with random parameters (command complete/status, disconnects, …)
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 255 })).map(([code, b]) => event(code, b)),
    );
    let round = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(arbitraryEvent, { minLength: 1, maxLength: 30 }), async (events) => {
        round++;
        for (const e of events) vc.inject(e);
        vc.inject(valid(round % 256));
        const expected = Buffer.alloc(16, round % 256).toString('hex');
        await waitFor('the valid report after the garbage', () => sightings.includes(expected), 5000);
        sightings.length = 0;
      }),
      { numRuns: 60 },
    );
    expect(scanner.state).toBe('poweredOn');
    expect(reports).toBeGreaterThanOrEqual(60);
    expect(hciGuardCounters.malformedAdvReports).toBeGreaterThan(0);
    scanner.stop();
    await vc.stop();
  });
});

describe.skipIf(existsSync('/sys/class/bluetooth/hci0'))('kernel transport without a Bluetooth adapter (this machine has none)', () => {
  it('reports the scanner powered off with the reason, keeps retrying, and keeps running', async () => {
    const prefix = 'test-nokernel/v1';
    const nok = provisionTestGateway(dir, 'gw-nok', 'venue-nok');
    const config = writeJson(join(dir, 'nokernel.json'), {
      gateway: { id: 'gw-nok', venue: 'venue-nok' },
      secretsFile: nok.secretsFile,
      broker: { url: broker.url, reconnectS: 0.5 },
      topicPrefix: prefix,
      radio: { kind: 'hci', scanner: { transport: 'hci:0' } },
      store: { path: join(dir, 'nokernel.db') },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    const radio = await waitFor('a status with the radio', async () => {
      const status = await requestStatus({
        control: TEST_BACKEND,
        broker: testBroker(broker.url, 'nok-probe'),
        prefix, venue: 'venue-nok', gateway: 'gw-nok', timeoutMs: 3000, gatewayKeys: [gatewayKeyOf(nok)],
      });
      return (status.counters as { radio: { state: string; error: string | null } }).radio;
    }, 15_000);
    expect(radio.state).toBe('poweredOff');
    expect(radio.error).toMatch(/^hci:0: /);
    expect(daemon.proc.exitCode).toBeNull();
    expect(await stopGracefully(daemon)).toBe(0);
  });
});


describe('TCP and serial transports (socat bridges them to the virtual controller)', () => {
  beforeAll(() => requirePackage(onPath('socat'), 'socat', 'socat'));
  it('noble scans through tcp:host:port and through serial:/dev/… (a pseudo-terminal)', async () => {
    const socketPath = join(dir, 'bridge.sock');
    const vc = new VirtualController({ socketPath, crowd: { seed: 3, phones: 0, arrivalsPerMinute: 600, minDwellS: 5, maxDwellS: 10, anchor: Date.now() } });
    await vc.start();
    const port = await freePort();
    const tty = join(dir, 'tty');
    const bridges = [
      spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${socketPath}`], { stdio: 'ignore' }),
      spawn('socat', [`PTY,link=${tty},raw,echo=0`, `UNIX-CONNECT:${socketPath}`], { stdio: 'ignore' }),
    ];
    await waitFor('the pseudo-terminal', () => existsSync(tty), 5000);
    const counts = { tcp: 0, serial: 0 };
    const tcp = new NobleScanner({ transport: parseTransport(`tcp:127.0.0.1:${port}`), deviceId: 5 }, createLogger('silent'));
    const serial = new NobleScanner({ transport: parseTransport(`serial:${tty}:1000000`), deviceId: 6 }, createLogger('silent'));
    tcp.start(() => counts.tcp++);
    serial.start(() => counts.serial++);
    await waitFor('reports over both', () => counts.tcp > 20 && counts.serial > 20, 10_000);
    expect(tcp.state).toBe('poweredOn');
    expect(serial.state).toBe('poweredOn');
    tcp.stop();
    serial.stop();
    for (const b of bridges) b.kill();
    await vc.stop();
  });
});

describe('virtual controller medium', () => {
  it('answers an active scanner with scan responses of scannable advertisers; a passive one gets none', async () => {
    const socketPath = join(dir, 'medium.sock');
    const vc = new VirtualController({ socketPath });
    await vc.start();
    const advertiser = await RawController.connect(socketPath);
    const active = await RawController.connect(socketPath);
    const passive = await RawController.connect(socketPath);
    await active.startScanning(true);
    await passive.startScanning(false);
    const adv = Buffer.from('0201060303aafe', 'hex');
    const rsp = Buffer.from('0909766775652d676174', 'hex'); // complete local name
    await advertiser.prepareAdvertising(adv, rsp);
    expect(await advertiser.setAdvertising(true)).toBe(0);
    // Re-enabling while advertising is refused, as real controllers do (bleno relies on that).
    expect(await advertiser.setAdvertising(true)).toBe(0x0c);
    await waitFor('reports', () => active.reports.length >= 4 && passive.reports.length >= 2, 5000);
    expect(active.reports.filter((r) => r.type === 0x04).every((r) => r.data.equals(rsp))).toBe(true);
    expect(active.reports.some((r) => r.type === 0x04)).toBe(true);
    expect(active.reports.some((r) => r.type === 0x00 && r.data.equals(adv))).toBe(true);
    expect(passive.reports.every((r) => r.type === 0x00)).toBe(true);
    for (const c of [advertiser, active, passive]) c.close();
    await vc.stop();
  });
});
