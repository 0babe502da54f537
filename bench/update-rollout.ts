// Releases at fleet size (issue 27): 1,000 simulated gateways (the real uplink and signing, the
// unit's rules for releases: simulators/update-unit.ts) on a private Mosquitto, a collector on
// SQLite driving `vgw fleet update` rollouts, the release served over HTTPS with each download held
// to a rate. First a good release (this build's, another version) through canary and rate, every
// unit downloading and checking the real tarball; then one that crashes at start, which must stop
// at the canary plus the failure budget, each unit it reached back on its release by itself.
// Prints one JSON object.
//   node dist/bench/update-rollout.js [gateways] [download MB/s per unit]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Collector, GatewayRegistry } from '../collector/index.js';
import { startScoped } from '../collector/rollouts.js';
import { counts, type Rollout, type RolloutPlan } from '../core/fleet/index.js';
import { createLogger } from '../core/log/index.js';
import { loadSeedFile, signingKeyFromSeed } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { FleetSim, LocalBroker } from '../simulators/index.js';
import { crashAtStart, deriveRelease, releaseManifest } from '../simulators/release-builds.js';
import { startReleaseServer } from '../simulators/release-server.js';

const GATEWAYS = Number(process.argv[2] ?? 1000);
const RATE_MB_S = Number(process.argv[3] ?? 4);
const HEALTH_GATE_S = 30;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'vgw-bench-update-'));
const out = join(dir, 'out');
const log = createLogger('error');

// The releases: this build, the same as a later version, and a later one that crashes at start.
const built = spawnSync('bash', [join(ROOT, 'packaging/release.sh')], { cwd: ROOT, env: { ...process.env, RELEASE_DIR: out }, encoding: 'utf8' });
if (built.status !== 0) throw new Error(`release.sh failed: ${built.stderr}`);
const A = (JSON.parse(built.stdout) as { version: string }).version;
const keyFile = join(out, 'dev-release.key');
const bump = (n: number) => A.replace(/^(\d+)\.(\d+)\.(\d+).*$/, (_m, x: string, y: string, z: string) => `${x}.${y}.${Number(z) + n}`);
const GOOD = bump(1);
const CRASHING = bump(2);
const goodManifest = deriveRelease({ out, work: dir, from: A, version: GOOD, keyFile });
deriveRelease({ out, work: dir, from: A, version: CRASHING, keyFile, change: crashAtStart });
const server = await startReleaseServer(out, join(dir, 'pki'), RATE_MB_S * 1_000_000);

const backend = new ControlSigner(randomBytes(32));
const broker = await LocalBroker.start(join(dir, 'broker'));
const prefix = 'bench/v3';
const fleet = new FleetSim({
  backendKeys: [backend.key.publicKey], brokerUrl: broker.url, prefix, gateways: GATEWAYS, seed: 13, rampS: 20,
  updates: {
    version: A, releaseKeys: [signingKeyFromSeed(loadSeedFile(keyFile, 'release key file', 'vgw release key')).publicKey], ca: readFileSync(server.ca),
    // the unit's service: RestartSec=5; the crashing release is the one the units cannot start
    crashing: [CRASHING], healthGateS: HEALTH_GATE_S, restartS: 5,
  },
}, log);
const registry = new GatewayRegistry(undefined, fleet.records);
const collector = new Collector({ control: backend, broker: { url: broker.url, clientId: 'bench-update-collector', keepaliveS: 30, connectTimeoutS: 10, reconnectS: 1 }, prefix, database: join(dir, 'collector.db'), registry }, log);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutS: number): Promise<void> {
  const end = Date.now() + timeoutS * 1000;
  let said = Date.now();
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutS} s`);
    if (Date.now() - said > 10_000) {
      said = Date.now();
      const r = (await collector.store.rollouts()).at(-1)?.rollout;
      process.stderr.write(`waiting for ${what}: ${r ? `${r.state} ${JSON.stringify(counts(r))}` : 'no rollout'}\n`);
    }
    await sleep(250);
  }
}
const rolloutOf = async (id: string): Promise<Rollout> => (await collector.store.rollouts()).find((r) => r.rollout.id === id)!.rollout;
const share = (pct: number) => Math.max(1, Math.ceil((pct / 100) * GATEWAYS));
const update = (version: string) => ({ kind: 'command' as const, command: { op: 'update' as const, manifest: `${server.url}${releaseManifest(version)}`, version } });

await collector.start();
await fleet.start();
await until('every gateway online at the collector', async () => (await collector.store.statuses()).filter((s) => s.state === 'online').length === GATEWAYS, 180);

// 1. The good release: canary 5 %, then 600 units a minute, stopping at 5 % failed.
const goodPlan: RolloutPlan = { canary: share(5), ratePerMinute: 600, abortAfter: share(5), settleMs: 600_000 };
const good = await startScoped(collector.store, registry, 'fleet', '', update(GOOD), goodPlan);
await until('the good release rolled out', async () => (await rolloutOf(good.id)).state !== 'running', 1200);
const done = await rolloutOf(good.id);
const doneAt = Math.max(...done.units.map((u) => u.settledAt ?? 0));
const onGood = fleet.gateways.filter((g) => g.updater?.running === GOOD && g.updater.status().committed === GOOD).length;
const downloads = server.requests.filter((r) => r.file === goodManifest.artifact.file).length;

// 2. A release that crashes at start: canary 5 %, stopping at 2 % failed.
const badPlan: RolloutPlan = { canary: share(5), ratePerMinute: 600, abortAfter: share(2), settleMs: 600_000 };
const bad = await startScoped(collector.store, registry, 'fleet', '', update(CRASHING), badPlan);
await until('the crashing release stopped', async () => (await rolloutOf(bad.id)).state !== 'running', 1200);
const abortedAfterS = (Date.now() - bad.createdAt) / 1000;
const aborted = await rolloutOf(bad.id);
const reached = new Set(aborted.units.filter((u) => u.state !== 'pending').map((u) => u.gateway));
const reachedUnits = fleet.gateways.filter((g) => reached.has(g.id));
const backOnGood = (g: (typeof reachedUnits)[number]) => g.uplink.connected && g.updater?.running === GOOD && g.updater.status().last?.outcome === 'rolledBack';
// the health window: three starts 5 s apart, then the committed release's start and connection
await until('every unit it reached back on its release', () => reachedUnits.every(backOnGood), 120).catch(() => undefined);
const notRolledBack = reachedUnits.filter((g) => !backOnGood(g)).length;

await fleet.stop();
await collector.stop();
await broker.stop();
await server.close();
rmSync(dir, { recursive: true, force: true });

const report: Record<string, number> = {
  update_gateways: GATEWAYS,
  update_download_mb_per_s: RATE_MB_S,
  update_release_bytes: goodManifest.artifact.bytes,
  // from the rollout's start (the canary included) until the last unit ran the release, committed
  update_rollout_s: +((doneAt - done.createdAt) / 1000).toFixed(1),
  update_not_applied: GATEWAYS - onGood,
  update_downloads: downloads,
  update_abort_units: reached.size,
  update_abort_bound: badPlan.canary + badPlan.abortAfter,
  update_abort_overshoot: Math.max(0, reached.size - (badPlan.canary + badPlan.abortAfter)),
  update_abort_not_rolled_back: notRolledBack,
  update_abort_s: +abortedAfterS.toFixed(1),
};
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(0);
