// Software updates end to end (issue 27, items 2 and 3): four real releases of this project (the
// build of `make release`; the next version, whose store adds a table; one that crashes at start;
// one signed by a key the unit does not trust) served over HTTPS, taken by the real daemon run by
// the project's own systemd unit (its ExecStartPre guard and ExecStart, under a staged install
// root). A download cut short resumes; a good release passes the health gate and is committed; the
// crashing one is rolled back by the guard and never tried again; the badly signed one is refused
// before anything changes; the older release runs again on the database the newer one migrated;
// a power cut during the download or the first start leaves a unit that starts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { gatewayTopics } from '../../core/wire/index.js';
import type { UpdateStatus } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { provisionTestGateway, signedRequest, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { runProcess, runVgw, waitFor, writeJson } from '../harness/processes.js';
import { type ReleaseServer, startReleaseServer } from '../harness/release-server.js';
import { manageService, type ManagedService } from '../harness/service-manager.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-update-');
const broker = useLocalBroker(dir);
const ROOT = resolve(__dirname, '../..');
const prefix = 'update/v3';
const out = join(dir, 'releases');
const staged = join(dir, 'staged');
const installRoot = join(staged, 'opt/venue-gateway');
const A = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const bump = (n: number) => A.replace(/^(\d+)\.(\d+)\.(\d+).*$/, (_m, x: string, y: string, z: string) => `${x}.${y}.${Number(z) + n}`);
const B = bump(1); // the next release: its store adds a table (an expanding migration)
const C = bump(2); // crashes at start
const D = bump(3); // signed by a key the unit does not trust
const tarball = (v: string) => `venue-gateway-${v}-linux-${process.arch}.tar.gz`;
const manifest = (v: string) => `venue-gateway-${v}-linux-${process.arch}.manifest.cose`;

/** A release made from A's as a developer's next build would differ: another version, a change in its code, signed. */
async function derive(version: string, key: string, change: (slot: string) => void): Promise<void> {
  const work = join(dir, `derive-${version}`);
  mkdirSync(work);
  execFileSync('tar', ['-xzf', join(out, tarball(A)), '-C', work]);
  const slot = join(work, `venue-gateway-${version}`);
  renameSync(join(work, `venue-gateway-${A}`), slot);
  const pkg = JSON.parse(readFileSync(join(slot, 'package.json'), 'utf8')) as { version: string };
  writeFileSync(join(slot, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2));
  change(slot);
  execFileSync('tar', ['-czf', join(out, tarball(version)), '-C', work, `venue-gateway-${version}`]);
  const signed = await runVgw(['release', 'sign', '--artifact', join(out, tarball(version)), '--key', key, '--release-version', version, '--commit', 'abcdef123456', '--out', join(out, manifest(version))]);
  expect(signed.stderr).toBe('');
}

let server: ReleaseServer;
let service: ManagedService;
let tool: mqtt.MqttClient;
const identity = provisionTestGateway(dir, 'gw-upd', 'venue-upd');
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
  const other = join(dir, 'other.key');
  expect((await runVgw(['release', 'key', '--out', key])).status).toBe(0);
  expect((await runVgw(['release', 'key', '--out', other])).status).toBe(0);
  const publicKey = (JSON.parse((await runVgw(['release', 'key', '--show', key])).stdout) as { publicKey: string }).publicKey;
  const built = await runProcess('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { RELEASE_DIR: out, RELEASE_KEY: key }, timeoutMs: 240_000 });
  expect([built.status, built.stderr]).toEqual([0, '']);
  await derive(B, key, (slot) => {
    const schema = join(slot, 'dist/daemon/store/schema.js');
    const js = readFileSync(schema, 'utf8');
    const added = js.replace(/\n\];\nexport const SCHEMA_VERSION/, `\n  { sql: "CREATE TABLE release_notes (version TEXT NOT NULL); INSERT INTO release_notes VALUES ('${B}')", keepsOlder: true },\n];\nexport const SCHEMA_VERSION`);
    expect(added).not.toBe(js);
    writeFileSync(schema, added);
  });
  await derive(C, key, (slot) => {
    const main = join(slot, 'dist/cli/main.js');
    const js = readFileSync(main, 'utf8');
    writeFileSync(main, js.replace('\nimport ', "\nif (process.argv[2] === 'run') { console.error('release C: crashing at start'); process.exit(1); }\nimport "));
  });
  await derive(D, other, () => {});
  server = await startReleaseServer(out, join(dir, 'pki'));

  // installed as an operator would: A's tarball unpacked, its own install.sh
  const unpacked = join(dir, 'unpacked');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', join(out, tarball(A)), '-C', unpacked]);
  const install = await runProcess('sh', [join(unpacked, `venue-gateway-${A}`, 'provisioning/install.sh'), '--root', staged, '--prebuilt']);
  expect([install.status, install.stderr]).toEqual([0, '']);

  ({ config, db } = simulatedUnitConfig({
    dir, identity, brokerUrl: broker().url, prefix, seed: 5,
    extra: { uplink: { statusIntervalS: 1 }, update: { root: installRoot, releaseKeys: [publicKey], ca: server.ca, healthGateS: 20 } },
  }));
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
