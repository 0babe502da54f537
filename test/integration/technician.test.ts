// A technician's diagnosis with the CLI alone: `vgw status` and `vgw doctor` against a real
// daemon (noble and bleno on the virtual controller, a real Mosquitto), then with things
// broken one at a time: each failure named, with its fix, and the documented exit codes.
import { chmodSync, copyFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBroker, VirtualController } from '../../simulators/index.js';
import { describeStorage } from '../../daemon/health/storage.js';
import { computeEid } from '../../core/protocols/index.js';
import { provisionTestGateway } from '../harness/identity.js';
import { runVgw, spawnVgw, Spawned, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { nonCamelKeys } from '../harness/casing.js';
import { CddlSchema } from '../harness/cddl.js';
import { typedFromJson } from '../harness/cbor-typed.js';
import { softwareVersion } from '../../core/software/index.js';

const dir = tempDir('vgw-tech-');
const schema = new CddlSchema(join(__dirname, '../../docs/protocol.cddl'));
const identityKey = '0102030405060708090a111213141516';
let broker: LocalBroker;
let vc: VirtualController;
let daemon: Spawned | null = null;
let config: string;
let base: Record<string, unknown>;
const identity = provisionTestGateway(dir, 'gw-tech', 'mall-tech', identityKey);

interface Check {
  check: string;
  ok: boolean;
  detail: string;
  fix?: string;
}
const doctor = async (cfg: string) => {
  const r = await runVgw(['doctor', '-c', cfg, '--json', '--timeout', '3']);
  return { status: r.status, checks: JSON.parse(r.stdout) as Check[], stderr: r.stderr };
};
const byName = (checks: Check[], name: string) => checks.find((c) => c.check === name)!;

beforeAll(async () => {
  broker = await LocalBroker.start(join(dir, 'broker'));
  const socketPath = join(dir, 'vc.sock');
  vc = new VirtualController({ socketPath, crowd: { seed: 77, phones: 0, arrivalsPerMinute: 60, minDwellS: 20, maxDwellS: 60, anchor: Date.now() } });
  await vc.start();
  base = {
    gateway: { id: 'gw-tech', venue: 'mall-tech' },
    secretsFile: identity.secretsFile,
    broker: { url: broker.url, reconnectS: 0.5 },
    radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0 } },
    beacon: { enabled: true, transport: `unix:${socketPath}`, deviceId: 1, exponent: 4 },
    clock: { syncCheck: 'assume-synced' },
    store: { path: join(dir, 'data', 'gateway.db') },
  };
  config = writeJson(join(dir, 'config.json'), base);
  // no systemd here: health.ready must not wait for a NOTIFY_SOCKET to tell
  const { NOTIFY_SOCKET: _notify, WATCHDOG_USEC: _watchdog, ...env } = process.env;
  daemon = spawnVgw(['run', '-c', config], env);
});

afterAll(async () => {
  if (daemon) await stopGracefully(daemon);
  await vc?.stop();
  await broker?.stop();
});

describe('vgw status and vgw doctor on a running unit', () => {
  it('status: radio, clock, beacon EID, encounters, backlog, last ack, broker, disk', async () => {
    const doc = await waitFor('the daemon ready with an EID on its control socket', async () => {
      const r = await runVgw(['status', '-c', config, '--json']);
      if (r.status !== 0) return false;
      const d = JSON.parse(r.stdout) as { counters: { health: { ready: boolean }; beacon: { eid: string | null } } };
      return d.counters.health.ready && d.counters.beacon.eid ? d : false;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${daemon?.output() ?? ''}`);
    });
    const counter = Math.floor(Date.now() / 1000);
    const candidates = [counter, counter - 16, counter + 16].map((c) => computeEid(Buffer.from(identityKey, 'hex'), 4, c).toString('hex'));
    expect(candidates).toContain(doc.counters.beacon.eid);
    // one casing across the whole document, HCI radio counters included
    expect(nonCamelKeys(doc)).toEqual([]);
    // the counters are the status document's, as docs/protocol.cddl types them (HCI radio, beacon)
    expect(schema.validate('counters', typedFromJson(doc.counters))).toEqual([]);
    // --json is the status document (protocol.md) plus `local` and `disk`, as its help says
    expect(Object.keys(doc).sort()).toEqual(['at', 'config', 'counters', 'disk', 'gateway', 'local', 'software', 'startedAt', 'state', 'v', 'venue']);
    expect(Object.keys((doc as unknown as { disk: object }).disk).sort()).toEqual(['databaseBytes', 'freeBytes', 'totalBytes']);
    expect((await runVgw(['status', '--help'])).stdout).toMatch(/plus `local`.*and `disk`/s);
    const r = await runVgw(['status', '-c', config]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^gateway    gw-tech at mall-tech, pid \d+, up since .*, ready$/m);
    const sw = softwareVersion();
    expect(r.stdout).toMatch(new RegExp(`^software   ${sw.version.replaceAll('.', '\\.')} \\(commit ${sw.commit}\\), protocol 3; config sha256:[0-9a-f]{12} \\(file\\)$`, 'm'));
    expect(r.stdout).toMatch(/^radio      poweredOn \(unix:.*vc\.sock\), \d+ reports, recovery level 0$/m);
    expect(r.stdout).toMatch(/^clock      synchronised \(config\)/m);
    expect(r.stdout).toMatch(/^beacon     advertising, EID [0-9a-f]{16}, next rotation \d{4}-/m);
    expect(r.stdout).toMatch(/^encounters \d+ open, \d+ stored since start$/m);
    expect(r.stdout).toMatch(/^backlog    \d+ batches \+ \d+ encounters not yet acknowledged; last ack never$/m);
    expect(r.stdout).toMatch(/^broker     connected \(mqtt:\/\/127\.0\.0\.1:\d+\)/m);
    expect(r.stdout).toMatch(/^disk       [\d.]+ [GM]B free of [\d.]+ [GM]B; database [\d.]+ MB$/m);
  });

  it('doctor: every check passes on a healthy unit (the disk check depends on this machine)', async () => {
    const d = await doctor(config);
    const failedChecks = d.checks.filter((c) => !c.ok && c.check !== 'disk');
    expect(failedChecks).toEqual([]);
    expect(d.checks.map((c) => c.check)).toEqual(['config', 'secrets', 'daemon', 'controller', 'permissions', 'clock', 'tls', 'broker', 'disk', 'storage', 'database']);
    // The real sysfs of this machine: the device named is the one under the database's folder.
    const storage = byName(d.checks, 'storage').detail;
    const dev = statSync(join(dirname(config), 'data')).dev;
    const expected = describeStorage(dev).device;
    if (expected === null) expect(storage).toMatch(/^no block device/);
    else expect(storage).toMatch(new RegExp(`\\b${expected}\\b`));
    expect(byName(d.checks, 'controller').detail).toMatch(/powered on, \d+ reports \(asked the running daemon\)/);
    expect(byName(d.checks, 'broker').detail).toMatch(/the running daemon is connected/);
    expect(byName(d.checks, 'database').detail).toMatch(/integrity ok, schema \d+/);
    expect(d.status).toBe(d.checks.every((c) => c.ok) ? 0 : 1);
    const human = await runVgw(['doctor', '-c', config]);
    expect(human.stdout).toMatch(/^✓ config      .*is valid$/m);
    expect(human.stdout).toMatch(/^✓ clock       synchronised \(config\)$/m);
  });

  it('with the daemon stopped: status exits 3; doctor says how to start it and probes controller and broker itself', async () => {
    await stopGracefully(daemon!);
    daemon = null;
    const s = await runVgw(['status', '-c', config]);
    expect(s.status).toBe(3);
    expect(s.stderr).toMatch(/no daemon answers on .*control\.sock: is it running\?/);
    const d = await doctor(config);
    expect(d.status).toBe(1);
    expect(byName(d.checks, 'daemon')).toMatchObject({ ok: false, fix: expect.stringMatching(/systemctl enable --now venue-gateway/) });
    expect(byName(d.checks, 'controller')).toMatchObject({ ok: true, detail: expect.stringMatching(/reachable/) });
    expect(byName(d.checks, 'broker')).toMatchObject({ ok: true, detail: expect.stringMatching(/connected/) });
  });

  it('status: something else answering on the control socket gets a clear error, not a crash', async () => {
    const socketPath = join(dir, 'foreign.sock');
    const server = createServer((s) => s.end(JSON.stringify({ v: 1, state: 'online' })));
    await new Promise<void>((r) => server.listen(socketPath, r));
    try {
      const cfg = writeJson(join(dir, 'foreign.json'), { ...base, health: { controlSocket: socketPath } });
      const s = await runVgw(['status', '-c', cfg]);
      expect(s.status).toBe(1);
      expect(s.stderr).toMatch(/^vgw: the control socket .*foreign\.sock: not a status document: v: must be 3\n$/);
    } finally {
      server.close();
    }
  });

  it('doctor names each broken part with its fix', async () => {
    // a readable secrets file, an unsynchronised clock, a missing controller, a corrupt database
    const loose = join(dir, 'loose-secrets.json');
    copyFileSync(identity.secretsFile, loose);
    chmodSync(loose, 0o644);
    const corrupt = join(dir, 'corrupt.db');
    writeFileSync(corrupt, Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(4096, 0xab)]));
    const broken = writeJson(join(dir, 'broken.json'), {
      ...base,
      secretsFile: loose,
      radio: { kind: 'hci', scanner: { transport: `unix:${join(dir, 'nothing.sock')}` } },
      clock: { syncCheck: 'assume-unsynced' },
      store: { path: corrupt },
    });
    const d = await doctor(broken);
    expect(d.status).toBe(1);
    expect(byName(d.checks, 'secrets')).toMatchObject({ ok: false, detail: expect.stringMatching(/readable by others \(mode 644\)/) });
    expect(byName(d.checks, 'controller')).toMatchObject({ ok: false, detail: expect.stringMatching(/nothing\.sock: ENOENT/), fix: expect.stringMatching(/radio\.scanner\.transport/) });
    expect(byName(d.checks, 'clock')).toMatchObject({ ok: false, detail: expect.stringMatching(/not synchronised.*the beacon is paused/), fix: expect.stringMatching(/timedatectl set-ntp true/) });
    expect(byName(d.checks, 'database')).toMatchObject({ ok: false, fix: expect.stringMatching(/move the file aside/) });

    await broker.stop();
    try {
      const b = await doctor(config);
      expect(byName(b.checks, 'broker')).toMatchObject({ ok: false, detail: expect.stringMatching(/ECONNREFUSED/), fix: expect.stringMatching(/broker\.url/) });
    } finally {
      await broker.restart();
    }
    const invalid = writeJson(join(dir, 'invalid.json'), { gateway: { id: 'gw tech', venue: 'mall' } });
    const i = await doctor(invalid);
    expect(i.status).toBe(1);
    expect(i.checks).toEqual([expect.objectContaining({ check: 'config', ok: false, detail: expect.stringMatching(/gateway\.id: must be 1-64/) })]);
  });

  it('every technician command has --help with an example', async () => {
    const top = (await runVgw(['--help'])).stdout;
    for (const cmd of ['provision', 'run', 'status', 'doctor', 'export', 'match', 'trace', 'collect', 'pull', 'decode', 'config', 'beacon']) expect(top).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    for (const cmd of ['provision', 'status', 'doctor', 'export', 'match', 'trace case', 'trace history']) {
      const help = (await runVgw([...cmd.split(' '), '--help'])).stdout;
      expect(help, cmd).toMatch(/Example/);
      expect(help, cmd).toMatch(/--json|--format/);
      expect(help, cmd).toMatch(/Exit codes/);
    }
  });
});
