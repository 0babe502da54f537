// Releases end to end (issue 27): `make release` builds the tarball a unit runs and its signed
// manifest (the code, the production dependencies with addons for this machine, the systemd unit),
// which `vgw release verify` takes and refuses as a unit would. Then six real releases of this
// project (that build; the next version, whose store adds a table; two that crash at start; one
// signed by a key the unit does not trust; a good one for the fleet) served over HTTPS, taken by the
// real daemon run by the project's own systemd unit (its ExecStartPre guard and ExecStart, under a
// staged install root). A download cut short resumes; a good release passes the health gate and is
// committed; a crashing one is rolled back by the guard and never tried again; the badly signed one
// is refused before anything changes; the older release runs again on the database the newer one
// expanded; a power cut during a download leaves a unit on its release; `vgw fleet update` stops a
// release that breaks its canary at the canary and takes a good one to every unit.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { gatewayTopics } from '../../core/wire/index.js';
import type { UpdateStatus } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { provisionTestGateway, signedRequest, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { runProcess, runVgw, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { metric } from '../harness/metrics.js';
import { crashAtStart, deriveRelease, releaseManifest, releaseTarball } from '../../simulators/release-builds.js';
import { type ReleaseServer, startReleaseServer } from '../../simulators/release-server.js';
import { manageService, type ManagedService } from '../harness/service-manager.js';
import { ELF_MACHINE, nativeAddons } from '../harness/elf.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-release-');
const broker = useLocalBroker(dir);
const ROOT = resolve(__dirname, '../..');
const prefix = 'update/v3';
const out = join(dir, 'releases');
const staged = join(dir, 'staged');
const installRoot = join(staged, 'opt/venue-gateway');
const staged2 = join(dir, 'staged2'); // a second unit, for the fleet rollouts
const A = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const bump = (n: number) => A.replace(/^(\d+)\.(\d+)\.(\d+).*$/, (_m, x: string, y: string, z: string) => `${x}.${y}.${Number(z) + n}`);
const B = bump(1); // the next release: its store adds a table (an expanding migration)
const C = bump(2); // crashes at start
const D = bump(3); // signed by a key the unit does not trust
const E = bump(4); // crashes at start, taken by a fleet rollout
const F = bump(5); // a good release, taken by a fleet rollout
const tarball = (v: string) => releaseTarball(v);
const manifest = (v: string) => releaseManifest(v);
/** A release made from A's build: another version, a change in its code, signed with `keyFile`. */
const derive = (version: string, keyFile: string, change?: (slot: string) => void) => deriveRelease({ out, work: dir, from: A, version, keyFile, change });

let server: ReleaseServer;
/** What `make release` printed (the manifest it signed), the release key's public half, and a key units do not trust. */
let builtStdout = '';
let publicKey = '';
const otherKey = join(dir, 'other.key');
let service: ManagedService;
let tool: mqtt.MqttClient;
const identity = provisionTestGateway(dir, 'gw-upd', 'venue-upd');
const identity2 = provisionTestGateway(dir, 'gw-upd2', 'venue-upd2');
let config2 = '';
const to = { venue: 'venue-upd', gateway: 'gw-upd' };
const topics = gatewayTopics(prefix, to.venue, to.gateway);
const replyTo = `${prefix}/replies/update-tool`;
const answers = new Map<string, Record<string, unknown>>();
let status: { software?: { version: string }; counters?: { update?: UpdateStatus } } = {};
let db = '';
let config = '';

const update = (): UpdateStatus | undefined => status.counters?.update;
async function ask(corr: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  await tool.publishAsync(topics.request, signedRequest(to, replyTo, body), { qos: 1, properties: { correlationData: Buffer.from(corr) } });
  return waitFor(`the answer to ${corr}`, () => answers.get(corr), 20_000);
}
const offer = (corr: string, version: string, extra: Record<string, unknown> = {}) => ask(corr, { op: 'update', manifest: `${server.url}${manifest(version)}`, version, ...extra });
/** The unit runs `version`, committed (it passed the health gate). */
const running = (version: string) => waitFor(`${version} running, committed`, () => status.software?.version === version && update()?.state === 'idle' && update()?.committed === version, 90_000);

beforeAll(async () => {
  mkdirSync(out);
  const key = join(dir, 'release.key');
  const other = otherKey;
  expect((await runVgw(['release', 'key', '--out', key])).status).toBe(0);
  expect((await runVgw(['release', 'key', '--out', other])).status).toBe(0);
  publicKey = (JSON.parse((await runVgw(['release', 'key', '--show', key])).stdout) as { publicKey: string }).publicKey;
  const built = await runProcess('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { RELEASE_DIR: out, RELEASE_KEY: key }, timeoutMs: 240_000 });
  expect([built.status, built.stderr]).toEqual([0, '']);
  builtStdout = built.stdout;
  derive(B, key, (slot) => {
    const schema = join(slot, 'dist/daemon/store/schema.js');
    const js = readFileSync(schema, 'utf8');
    const added = js.replace(/\n\];\nexport const SCHEMA_VERSION/, `\n  { sql: "CREATE TABLE release_notes (version TEXT NOT NULL); INSERT INTO release_notes VALUES ('${B}')", keepsOlder: true },\n];\nexport const SCHEMA_VERSION`);
    expect(added).not.toBe(js);
    writeFileSync(schema, added);
  });
  derive(C, key, crashAtStart);
  derive(D, other);
  derive(E, key, crashAtStart);
  derive(F, key);
  server = await startReleaseServer(out, join(dir, 'pki'));

  // installed as an operator would: A's tarball unpacked, its own install.sh
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', join(out, tarball(A)), '-C', unpacked]);
  for (const root of [staged, staged2]) {
    const install = await runProcess('sh', [join(unpacked, `venue-gateway-${A}`, 'provisioning/install.sh'), '--root', root, '--prebuilt']);
    expect([install.status, install.stderr]).toEqual([0, '']);
  }

  const unitConfig = (home: string, id: typeof identity, root: string, seed: number) => simulatedUnitConfig({
    dir: home, identity: id, brokerUrl: broker().url, prefix, seed,
    extra: { uplink: { statusIntervalS: 1 }, update: { root, releaseKeys: [publicKey], ca: server.ca, healthGateS: 20 } },
  });
  ({ config, db } = unitConfig(dir, identity, installRoot, 5));
  config2 = unitConfig(dir, identity2, join(staged2, 'opt/venue-gateway'), 6).config;
  tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'update-tool' });
  tool.on('message', (topic, payload, packet) => {
    if (topic === topics.status) {
      const doc = unitDoc<typeof status & { state: string }>(payload, identity);
      if (doc.state === 'online') status = doc;
    } else answers.set(String(packet.properties?.correlationData), unitDoc(payload, identity));
  });
  await tool.subscribeAsync([replyTo, topics.status], { qos: 1 });
  service = manageService({ unitFile: join(staged, 'etc/systemd/system/venue-gateway.service'), stagedRoot: staged, config, currentRelease: () => linked('current') });
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await tool?.endAsync();
  await server?.close();
});

const linked = (name: 'current' | 'committed') => {
  try {
    return readlinkSync(join(installRoot, name)).replace(/^releases\//, '');
  } catch {
    return null;
  }
};
const slotState = () => JSON.parse(readFileSync(join(installRoot, 'update-state.json'), 'utf8')) as { committed: string; trial: unknown; failed: string[] };
const starts = () => service.events.filter((e) => e.kind === 'start').map((e) => e.release);

describe('make release', () => {
  it('builds a signed tarball of what a unit runs, which verify takes and refuses as a unit would', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const name = `venue-gateway-${pkg.version}-linux-${process.arch}`;
    const tarballFile = join(out, `${name}.tar.gz`);
    const manifestFile = join(out, `${name}.manifest.cose`);
    const signed = JSON.parse(builtStdout) as { version: string; commit: string; arch: string; nodeAbi: string; artifact: { bytes: number } };
    expect(signed).toMatchObject({ version: pkg.version, arch: process.arch, nodeAbi: process.versions.modules, artifact: { bytes: statSync(tarballFile).size } });
    expect(signed.commit).toBe(execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim());

    // what is inside: the code, the production dependencies only, addons for this machine, the unit
    const root = join(dir, 'slot');
    mkdirSync(root);
    execFileSync('tar', ['-xzf', tarballFile, '-C', root]);
    const slot = join(root, `venue-gateway-${pkg.version}`);
    expect(existsSync(join(slot, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(slot, 'provisioning/venue-gateway.service'))).toBe(true);
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(join(slot, 'node_modules', dep)), dep).toBe(true);
    for (const dev of ['vitest', 'typescript', 'eslint']) expect(existsSync(join(slot, 'node_modules', dev)), dev).toBe(false);
    const native = [...nativeAddons(join(slot, 'node_modules'))].map(([file, machine]) => ({ file, machine }));
    expect(native.map((a) => a.file)).toEqual(expect.arrayContaining([expect.stringMatching(/better-sqlite3\/build\/Release\/better_sqlite3\.node$/)]));
    expect(native.filter((a) => a.machine !== ELF_MACHINE[process.arch])).toEqual([]);
    // extracted elsewhere, it runs: its own code and dependencies, and it knows its commit
    const version = await runProcess(process.execPath, [join(slot, 'dist/cli/main.js'), '--version'], { cwd: root });
    expect(version.stdout).toContain(pkg.version);
    expect(version.stdout).toContain(signed.commit.slice(0, 7));
    const decoded = await runProcess(process.execPath, [join(slot, 'dist/cli/main.js'), 'config', 'check', '--help'], { cwd: root });
    expect(decoded.status).toBe(0);
    // and the native addons a unit loads on Linux load from the slot: SQLite answers, the HCI socket and unix-dgram open
    // (noble's and bleno's own .node files are their macOS and Windows bindings, never loaded on Linux)
    const loads = await runProcess(process.execPath, ['-e', `
      const req = require('node:module').createRequire(${JSON.stringify(join(slot, 'package.json'))});
      const db = new (req('better-sqlite3'))(':memory:');
      const resolved = ['better-sqlite3', 'unix-dgram', '@abandonware/bluetooth-hci-socket'].map((p) => req.resolve(p));
      console.log(JSON.stringify({ sqlite: db.prepare('select sqlite_version() as v').get().v, hci: typeof req('@abandonware/bluetooth-hci-socket'), dgram: typeof req('unix-dgram').createSocket, resolved }));
    `], { cwd: root });
    expect(loads.stderr).toBe('');
    const loaded = JSON.parse(loads.stdout) as { sqlite: string; hci: string; dgram: string; resolved: string[] };
    expect(loaded).toMatchObject({ sqlite: expect.stringMatching(/^3\./), hci: 'function', dgram: 'function' });
    for (const r of loaded.resolved) expect(r.startsWith(slot)).toBe(true);

    // verify: taken with the key; refused altered, cut short, by another key, for another unit, or older
    const verify = (args: string[], artifact = tarballFile) => runVgw(['release', 'verify', '--artifact', artifact, '--manifest', manifestFile, ...args]);
    const ok = await verify(['--release-key', publicKey]);
    expect([ok.status, ok.stderr]).toEqual([0, '']);
    expect(JSON.parse(ok.stdout)).toMatchObject({ version: pkg.version, arch: process.arch });
    const bytes = readFileSync(tarballFile);
    const altered = Buffer.from(bytes);
    altered[altered.length >> 1] ^= 1;
    writeFileSync(join(dir, 'altered.tar.gz'), altered);
    writeFileSync(join(dir, 'short.tar.gz'), bytes.subarray(0, bytes.length - 100));
    const other = await runVgw(['release', 'key', '--show', otherKey]);
    const refusals: Array<[string[], string, RegExp]> = [
      [['--release-key', publicKey], join(dir, 'altered.tar.gz'), /^vgw: release refused: artifact\.sha256: the tarball is not the one the manifest names/],
      [['--release-key', publicKey], join(dir, 'short.tar.gz'), /^vgw: release refused: artifact\.bytes: /],
      [['--release-key', (JSON.parse(other.stdout) as { publicKey: string }).publicKey], tarballFile, /^vgw: release refused: manifest: signed by key [0-9a-f]{16}, not a release key this unit trusts/],
      [['--release-key', publicKey, '--arch', process.arch === 'arm64' ? 'x64' : 'arm64'], tarballFile, /^vgw: release refused: arch: the release is for linux-/],
      [['--release-key', publicKey, '--node-abi', '127'], tarballFile, process.versions.modules === '127' ? /^$/ : /^vgw: release refused: nodeAbi: the release's native addons are for Node ABI /],
      [['--release-key', publicKey, '--running', '99.0.0'], tarballFile, /^vgw: release refused: version: .* is older than the running 99\.0\.0/],
    ];
    for (const [args, artifact, message] of refusals) {
      const r = await verify(args, artifact);
      expect([r.status, r.stderr], args.join(' ')).toEqual([1, expect.stringMatching(message)]);
    }
    expect((await verify(['--release-key', publicKey, '--running', '99.0.0', '--downgrade'])).status).toBe(0);
    // the manifest's signature is the release key's alone: the same bytes signed as a control message do not pass
    const forged = readFileSync(manifestFile);
    forged[forged.length - 1] ^= 1;
    writeFileSync(join(dir, 'forged.manifest.cose'), forged);
    const bad = await runVgw(['release', 'verify', '--artifact', tarballFile, '--manifest', join(dir, 'forged.manifest.cose'), '--release-key', publicKey]);
    expect([bad.status, bad.stderr]).toEqual([1, expect.stringMatching(/manifest: the signature does not verify/)]);
    // arguments named
    const noKey = await runVgw(['release', 'verify', '--artifact', tarballFile, '--manifest', manifestFile, '--release-key', 'zz']);
    expect([noKey.status, noKey.stderr]).toEqual([2, expect.stringMatching(/--release-key: "zz" is neither a key file nor Ed25519 public keys/)]);
  });
});

describe('software updates on a unit under its service', () => {
  beforeEach(() => onTestFailed(() => {
    // what the unit did, for whoever reads the failure
    console.error(JSON.stringify({ events: service.events.map((e) => ({ ...e, output: e.output?.slice(0, 300) })), update: update(), software: status.software }, null, 1));
    console.error(service.output().split('\n').slice(-40).join('\n'));
  }));
  it('runs the installed release from its slot, and takes the next one over HTTPS, resuming a cut download, on trial until healthy', async () => {
    await running(A);
    expect(starts()).toEqual([A]);
    server.cutOnce(tarball(B), 3_000_000);
    expect(await offer('to-b', B)).toMatchObject({ ok: true, op: 'update', version: B });
    await running(B);
    // the download was cut and resumed where it stopped, not fetched again whole
    const asked = server.requests.filter((r) => r.file === tarball(B));
    expect(asked.map((r) => r.status)).toEqual([200, 206]);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(asked[1].range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(2_000_000); // what reached the unit of the 3,000,000 bytes sent before the cut
    expect(resumedAt).toBeLessThanOrEqual(3_000_000);
    expect(service.output()).toContain('release: download interrupted; resuming');
    expect(starts()).toEqual([A, B]);
    expect([linked('current'), linked('committed')]).toEqual([B, B]);
    expect(slotState()).toMatchObject({ committed: B, trial: null });
    expect(update()?.last).toMatchObject({ version: B, outcome: 'applied' });
    // B's visible change: its expanding migration ran
    const d = new Database(db, { readonly: true });
    expect(d.prepare('SELECT version FROM release_notes').pluck().all()).toEqual([B]);
    d.close();
  }, 180_000);

  it('refuses a release signed by another key before anything changes, and an older one unless told to downgrade', async () => {
    expect(await offer('to-d', D)).toMatchObject({ ok: true });
    await waitFor('D refused', () => update()?.last?.version === D && update()!.last);
    expect(update()!.last).toMatchObject({ outcome: 'refused', reason: expect.stringMatching(/^manifest: signed by key [0-9a-f]{16}, not a release key this unit trusts/) });
    expect(server.requests.some((r) => r.file === tarball(D))).toBe(false); // the tarball was never fetched
    expect(existsSync(join(installRoot, 'releases', D))).toBe(false);
    expect(await offer('to-a', A)).toMatchObject({ ok: false, error: `version: ${A} is older than the running ${B} (say downgrade to install it)` });
    expect(starts()).toEqual([A, B]);
    // bad commands are answered with the field
    const bad = await ask('bad-url', { op: 'update', manifest: 'http://example.invalid/x.manifest.cose', version: C });
    expect(bad).toMatchObject({ ok: false, error: expect.stringContaining('manifest') });
  }, 120_000);

  it('rolls back a release that crashes at start after three starts, by the guard, and never tries it again', async () => {
    expect(await offer('to-c', C)).toMatchObject({ ok: true });
    await waitFor('C rolled back', () => update()?.last?.version === C && update()!.last!.outcome === 'rolledBack' && status.software?.version === B, 90_000);
    expect(update()!.last!.reason).toMatch(/started 3 times without passing the health gate/);
    expect(starts()).toEqual([A, B, C, C, C, B]);
    expect(service.events.filter((e) => e.kind === 'pre').some((e) => e.output?.includes(`release ${C} rolled back`))).toBe(true);
    expect([linked('current'), linked('committed')]).toEqual([B, B]);
    expect(slotState().failed).toContain(C);
    // asked again by the backend's CLI: refused, the field named
    const registry = writeJson(join(dir, 'registry.json'), [identity.record]);
    const collectorConfig = writeJson(join(dir, 'collector.json'), {
      broker: { url: broker().url }, topicPrefix: prefix, collector: { database: join(dir, 'collector.db'), registry, controlKeyFile: testBackendKeyFile(dir) },
    });
    const again = await runVgw(['command', 'update', '--venue', to.venue, '--gateway', to.gateway, '--manifest', `${server.url}${manifest(C)}`, '--release-version', C, '-c', collectorConfig]);
    expect([again.status, again.stderr]).toEqual([1, `vgw: gateway refused the request: version: ${C} was rolled back on this unit before and is not tried again (ship a new version)\n`]);
  }, 120_000);

  it('goes back to the older release when told to downgrade: it runs on the database the newer one migrated', async () => {
    expect(await offer('down-a', A, { downgrade: true })).toMatchObject({ ok: true });
    await running(A);
    expect(starts().at(-1)).toBe(A);
    expect(service.output()).toContain('the database was migrated by a newer release; running on it');
    const d = new Database(db, { readonly: true });
    expect(d.pragma('user_version', { simple: true })).toBeGreaterThan(0);
    expect(d.prepare('SELECT count(*) FROM release_notes').pluck().get()).toBe(1); // B's table kept, A runs beside it
    d.close();
  }, 120_000);

  it('a power cut during the download leaves the running release; asked again, the download resumes', async () => {
    server.cutOnce(tarball(B), 1_000_000); // the first connection stops early, so a cut finds a part on disk
    await offer('b-cut', B);
    await waitFor('a part downloaded', () => existsSync(join(installRoot, 'downloads', `${tarball(B)}.part`)) && service.output().includes('download interrupted'), 30_000);
    await service.kill();
    service.boot();
    await running(A);
    expect(starts().at(-1)).toBe(A);
    const before = server.requests.length;
    // asked again by the Python client, which checks the answer with the unit's registered key
    const py = await runProcess('/usr/bin/python3', [
      '-m', 'vgw_client', 'update', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--manifest', `${server.url}${manifest(B)}`, '--release-version', B, '--control-key', testBackendKeyFile(dir), '--registry', writeJson(join(dir, 'py-registry.json'), [identity.record]),
    ], { cwd: join(ROOT, 'clients/python'), timeoutMs: 30_000 });
    expect(py.stderr).toBe('');
    expect(JSON.parse(py.stdout)).toMatchObject({ v: 3, ok: true, op: 'update', version: B });
    await running(B);
    expect(server.requests.slice(before).filter((r) => r.file === tarball(B)).map((r) => r.status)).toEqual([206]);
  }, 180_000);
});

describe('vgw fleet update', () => {
  interface RolloutView { state: string; applied: number; failed: number; units: Array<{ gateway: string; state: string; reason?: string }> }

  it('stops a release that breaks its canary at the canary, back on its release; takes a good one to every unit; the fleet view and /metrics count versions', async () => {
    const registry = writeJson(join(dir, 'fleet-registry.json'), [identity.record, identity2.record]);
    const collectorConfig = writeJson(join(dir, 'fleet-collector.json'), {
      broker: { url: broker().url, clientId: 'collector-upd' }, topicPrefix: prefix,
      collector: { database: join(dir, 'fleet-collector.db'), registry, controlKeyFile: testBackendKeyFile(dir), http: { port: 0 } },
    });
    const second = manageService({ unitFile: join(staged2, 'etc/systemd/system/venue-gateway.service'), stagedRoot: staged2, config: config2, currentRelease: () => null });
    const collector = spawnVgw(['collect', '-c', collectorConfig]);
    try {
      const base = await waitFor('the collector\'s page', () => /"url":"(http:\/\/127\.0\.0\.1:\d+\/)"/.exec(collector.output())?.[1], 20_000);
      const fleet = async () => JSON.parse(await (await fetch(`${base}api/fleet`)).text()) as { summary: { online: number; versions: Record<string, number> } };
      await waitFor('both units online at the collector, on their releases', async () => {
        const f = await fleet();
        return f.summary.online === 2 && f.summary.versions[B] === 1 && f.summary.versions[A] === 1;
      }, 60_000);
      const start = async (version: string) => {
        const r = await runVgw(['fleet', 'update', '--fleet', '--manifest', `${server.url}${manifest(version)}`, '--release-version', version, '--canary', '1', '--abort-after', '1', '--rate', 'max', '--settle', '120', '-c', collectorConfig]);
        expect(r.stderr).toBe('');
        return (JSON.parse(r.stdout) as { rollout: string }).rollout;
      };
      const ended = (id: string) => waitFor(`rollout ${id} ended`, async () => {
        const v = JSON.parse((await runVgw(['fleet', 'config', 'status', '--rollout', id, '-c', collectorConfig])).stdout) as RolloutView;
        return v.state === 'done' || v.state === 'aborted' ? v : undefined;
      }, 150_000);

      // E crashes at start: its canary rolls it back by itself, the rollout stops there, the other unit never hears of it
      const broken = await ended(await start(E));
      expect(broken).toMatchObject({ state: 'aborted', failed: 1, applied: 0 });
      const canary = broken.units.find((u) => u.state === 'failed')!;
      expect(canary.reason).toMatch(/^rolled back: started 3 times without passing the health gate/);
      expect(broken.units.filter((u) => u.state === 'pending')).toHaveLength(1);
      expect(server.requests.filter((r) => r.file === tarball(E))).toHaveLength(1); // one unit downloaded it
      await waitFor('both back on their releases', async () => {
        const f = await fleet();
        return f.summary.online === 2 && f.summary.versions[B] === 1 && f.summary.versions[A] === 1;
      }, 60_000);

      // F is good: the canary, then the rest; every unit on it, committed
      const goodId = await start(F);
      const good = await ended(goodId);
      expect(good).toMatchObject({ state: 'done', applied: 2, failed: 0 });
      const f = await fleet();
      expect(f.summary.versions).toEqual({ [F]: 2 });
      const metrics = await (await fetch(`${base}metrics`)).text();
      expect(metric(metrics, `vgw_gateways_software{version="${F}",state="online"}`)).toBe(2);
      expect(metric(metrics, `vgw_rollout_units{rollout="${goodId}",change="update to ${F} on fleet",state="applied"}`)).toBe(2);
    } finally {
      await second.stop();
      await stopGracefully(collector);
    }
  }, 420_000);
});
