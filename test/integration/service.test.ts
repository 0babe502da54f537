// The daemon as a systemd service: the unit passes `systemd-analyze verify` and scores ≤ 2.0 in
// `systemd-analyze security --offline=yes`; the sd_notify datagrams reach a real NOTIFY_SOCKET
// listener (a unix datagram socket, as systemd's) in order; the watchdog stops while the radio
// is down and resumes when it comes back.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBroker, VirtualController } from '../../simulators/index.js';
import { watchdogIntervalMs, watchdogVerdict } from '../../daemon/health/index.js';
import { provisionTestGateway } from '../harness/identity.js';
import { sleep, spawnVgw, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';
import { EXIT } from '../../cli/errors.js';

const UNIT = resolve(__dirname, '../../provisioning/venue-gateway.service');
const dir = tempDir('vgw-service-');
const require = createRequire(import.meta.url);
const haveSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

interface Listener {
  messages: string[];
  close(): void;
}

/** A NOTIFY_SOCKET as systemd binds it: AF_UNIX, SOCK_DGRAM, one message per datagram. */
function notifyListener(path: string): Listener {
  const { createSocket } = require('unix-dgram') as {
    createSocket(type: 'unix_dgram', cb: (msg: Buffer) => void): { bind(p: string): void; close(): void; on(e: string, cb: (e: Error) => void): void };
  };
  const messages: string[] = [];
  const socket = createSocket('unix_dgram', (msg) => messages.push(msg.toString()));
  socket.on('error', (err) => messages.push(`ERROR ${err.message}`));
  socket.bind(path);
  return { messages, close: () => socket.close() };
}

let broker: LocalBroker;
beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
});
afterAll(async () => {
  await broker?.stop();
});

describe('the systemd unit', () => {
  beforeAll(() => requirePackage(haveSystemdAnalyze, 'systemd-analyze', 'systemd'));
  it('passes systemd-analyze verify', () => {
    const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('scores 2.0 or lower in systemd-analyze security --offline=yes', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' });
    const m = /Overall exposure level for venue-gateway\.service: (\d+\.\d)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2.0);
  });

  it('is Type=notify with a watchdog, restarts on failure, runs as its own user with only CAP_NET_RAW and CAP_NET_ADMIN', () => {
    const unit = readFileSync(UNIT, 'utf8');
    const setting = (key: string) => unit.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    expect(setting('Type')).toEqual(['notify']);
    expect(Number(setting('WatchdogSec')[0])).toBeGreaterThan(0);
    expect(setting('Restart')).toEqual(['on-failure']);
    expect(setting('User')).toEqual(['venue-gateway']);
    expect(setting('CapabilityBoundingSet')).toEqual(['CAP_NET_RAW CAP_NET_ADMIN']);
    expect(setting('AmbientCapabilities')).toEqual(['CAP_NET_RAW CAP_NET_ADMIN']);
    // the exit code `vgw run` ends with for a restart command (commands.test.ts) starts it again, as a success
    expect(setting('RestartForceExitStatus')).toEqual([String(EXIT.restart)]);
    expect(setting('SuccessExitStatus')).toEqual([String(EXIT.restart)]);
  });
});

describe('provisioning/install.sh', () => {
  const INSTALL = resolve(__dirname, '../../provisioning/install.sh');

  it('stages the program, the unit, the config template and the folders with their modes', () => {
    const root = join(dir, 'root');
    const r = spawnSync('sh', [INSTALL, '--root', root, '--no-npm'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const mode = (p: string) => (statSync(join(root, p)).mode & 0o777).toString(8);
    const version = (JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
    expect(existsSync(join(root, `opt/venue-gateway/releases/${version}/dist/cli/main.js`))).toBe(true);
    // installed by hand: the committed release, which the service starts and its guard runs from
    expect(readlinkSync(join(root, 'opt/venue-gateway/current'))).toBe(`releases/${version}`);
    expect(readlinkSync(join(root, 'opt/venue-gateway/committed'))).toBe(`releases/${version}`);
    expect(JSON.parse(readFileSync(join(root, 'opt/venue-gateway/update-state.json'), 'utf8'))).toMatchObject({ committed: version, trial: null });
    expect(readFileSync(join(root, 'etc/systemd/system/venue-gateway.service'), 'utf8')).toBe(readFileSync(UNIT, 'utf8'));
    expect(mode('etc/venue-gateway')).toBe('750');
    expect(mode('var/lib/venue-gateway')).toBe('700');
    expect(mode('etc/venue-gateway/config.template.json')).toBe('640');
    expect(readlinkSync(join(root, 'usr/local/bin/vgw'))).toBe('/opt/venue-gateway/current/dist/cli/main.js');
  });

  it('refuses a Node.js older than 20, saying which it found', () => {
    const fakeNode = join(dir, 'node18');
    writeFileSync(fakeNode, '#!/bin/sh\ncase "$1" in -p) echo 18 ;; --version) echo v18.19.0 ;; esac\n', { mode: 0o755 });
    const r = spawnSync('sh', [INSTALL, '--root', join(dir, 'root18'), '--no-npm'], { encoding: 'utf8', env: { ...process.env, NODE: fakeNode } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/node v18\.19\.0 is too old: venue-gateway needs Node\.js 20 or newer/);
  });

  it('refuses unknown options', () => {
    const r = spawnSync('sh', [INSTALL, '--frobnicate'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option --frobnicate/);
  });
});

describe('sd_notify', () => {
  it('the watchdog verdict: a late event loop or a radio down past its grace withholds the ping', () => {
    const base = { intervalMs: 1000, radioPoweredOn: true, radioDownMs: 0, radioGraceMs: 5000, loopLagMs: 10 };
    expect(watchdogVerdict(base).ping).toBe(true);
    expect(watchdogVerdict({ ...base, loopLagMs: 600 })).toEqual({ ping: false, reason: 'event loop 600 ms late' });
    expect(watchdogVerdict({ ...base, radioPoweredOn: false, radioDownMs: 4000 }).ping).toBe(true);
    expect(watchdogVerdict({ ...base, radioPoweredOn: false, radioDownMs: 6000 })).toEqual({ ping: false, reason: 'radio down for 6 s' });
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' })).toBe(30_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, 2)).toBeNull();
    expect(watchdogIntervalMs({})).toBeNull();
  });

  it('READY once store and radio are up, STATUS with counters, WATCHDOG pings, STOPPING on SIGTERM, then a clean exit', async () => {
    const socket = join(dir, 'notify.sock');
    const listener = notifyListener(socket);
    const id = provisionTestGateway(dir, 'gw-notify', 'venue-notify');
    const db = join(dir, 'notify.db');
    const config = writeJson(join(dir, 'notify.json'), {
      gateway: { id: 'gw-notify', venue: 'venue-notify' },
      secretsFile: id.secretsFile,
      broker: { url: broker.url },
      radio: { simulated: { seed: 3, arrivalsPerMinute: 600, minDwellS: 60, maxDwellS: 60, speed: 20 } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: db, checkpointS: 1 },
      health: { statusIntervalS: 0.3 },
    });
    const child = spawnVgw(['run', '-c', config], { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' }).proc; // killed by the harness if the test fails
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor('READY and a few watchdog pings', () => listener.messages.filter((m) => m === 'WATCHDOG=1').length >= 3 && listener.messages.some((m) => m.startsWith('READY=1')), 20_000);
    await waitFor('a STATUS with stored encounters', () => listener.messages.some((m) => /^STATUS=radio simulated, \d+ open, [1-9]\d* stored/.test(m)), 20_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await sleep(100);
    listener.close();
    const m = listener.messages;
    const ready = m.findIndex((x) => x.startsWith('READY=1'));
    const stopping = m.findIndex((x) => x.startsWith('STOPPING=1'));
    expect(ready).toBeGreaterThanOrEqual(0);
    expect(m[ready]).toMatch(/\nSTATUS=radio simulated/);
    expect(m.findIndex((x, i) => i > ready && x === 'WATCHDOG=1')).toBeGreaterThan(ready);
    expect(m.findIndex((x, i) => i > ready && x.startsWith('STATUS='))).toBeGreaterThan(ready);
    expect(stopping).toBeGreaterThan(ready);
    expect(m.slice(stopping + 1).some((x) => x === 'WATCHDOG=1' || x.startsWith('READY'))).toBe(false);
    expect(m.some((x) => x.startsWith('ERROR'))).toBe(false);
    // SIGTERM flushed: what was open at the last STATUS before STOPPING is in the database too.
    const lastStatus = m.slice(0, stopping).reverse().find((x) => x.startsWith('STATUS=radio'))!;
    const [, open, stored] = /(\d+) open, (\d+) stored/.exec(lastStatus)!.map(Number);
    expect(open).toBeGreaterThan(0);
    const gatewayDb = new Database(db, { readonly: true });
    expect(gatewayDb.prepare('SELECT count(*) FROM encounters').pluck().get()).toBeGreaterThanOrEqual(stored + open);
    gatewayDb.close();
  });

  it('no READY and no watchdog pings while the radio is down past its grace; both come once it powers on', async () => {
    const socket = join(dir, 'notify-radio.sock');
    const listener = notifyListener(socket);
    const vcSocket = join(dir, 'late-vc.sock');
    const id = provisionTestGateway(dir, 'gw-late', 'venue-late');
    const config = writeJson(join(dir, 'late.json'), {
      gateway: { id: 'gw-late', venue: 'venue-late' },
      secretsFile: id.secretsFile,
      broker: { url: broker.url },
      radio: { kind: 'hci', scanner: { transport: `unix:${vcSocket}`, deviceId: 0 } },
      store: { path: join(dir, 'late.db'), checkpointS: 1 },
      health: { radioGraceS: 1 },
    });
    const child = spawnVgw(['run', '-c', config], { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000' }).proc; // killed by the harness if the test fails
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await sleep(3000);
    const before = [...listener.messages];
    expect(before.some((x) => x.startsWith('READY'))).toBe(false);
    // pings during the grace second, then none
    const pingsThen = before.filter((x) => x === 'WATCHDOG=1').length;
    await sleep(1500);
    expect(listener.messages.filter((x) => x === 'WATCHDOG=1').length).toBe(pingsThen);
    expect(existsSync(vcSocket)).toBe(false);
    const vc = new VirtualController({ socketPath: vcSocket });
    await vc.start();
    try {
      await waitFor('READY after the controller appears', () => listener.messages.some((x) => x.startsWith('READY=1')), 30_000);
      const at = listener.messages.length;
      await waitFor('watchdog pings again', () => listener.messages.slice(at).filter((x) => x === 'WATCHDOG=1').length >= 2, 10_000);
    } finally {
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await vc.stop();
      listener.close();
    }
  });
});
