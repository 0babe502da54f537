import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { describeDatabase, isPostgresUrl } from '../collector/index.js';
import { createLogger } from '../core/log/index.js';
import { loadBackendKeySeed, writeNewBackendKey } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { FleetSim, LocalBroker, LocalPostgres, type FleetReport } from '../simulators/index.js';
import { openEncounterSource } from './encounter-db.js';
import { EXIT, fail, UsageError } from './errors.js';

interface Options {
  gateways: string;
  minutes: string;
  speed: string;
  seed: string;
  collectors: string;
  database?: string;
  postgres?: boolean;
  broker?: string;
  restartBrokerAt?: string;
  brokerDownS: string;
  commitS: string;
  batchAgeS: string;
  dir?: string;
  backendKeyFile?: string;
  json?: boolean;
}

function number(value: string, option: string, min: number, integer = false): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${option}: "${value}" must be ${integer ? 'a whole number' : 'a number'} of at least ${min}`);
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `vgw collect` child; resolves once it says it is connected. */
function startCollector(config: string, name: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [process.argv[1], 'collect', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`collector ${name} did not connect within 30 s: ${output.slice(-2000)}`)), 30_000);
    const onData = (d: Buffer) => {
      output = (output + d.toString()).slice(-20_000);
      if (output.includes('"collector connected"')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        // Keep draining its output so the pipe never fills.
        child.stdout!.resume();
        resolvePromise(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`collector ${name} exited with ${code}: ${output.slice(-2000)}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((r) => {
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });
}

function printReport(r: FleetReport, database: string): void {
  const lines = [
    `${r.gateways} gateways for ${r.runS.toFixed(0)} s at ${r.speed}× the mix (${r.mix.map((m) => `${m.venues} ${m.kind}`).join(', ')}), into ${describeDatabase(database)}`,
    `encounters: ${r.encountersMade} made, ${r.encountersAcked} acknowledged; batches: ${r.batchesCut} cut, ${r.batchesPublished} published, ${r.batchesResent} re-sent`,
    r.latencyMs ? `latency, closing → ack: p50 ${(r.latencyMs.p50 / 1000).toFixed(1)} s, p99 ${(r.latencyMs.p99 / 1000).toFixed(1)} s, max ${(r.latencyMs.max / 1000).toFixed(1)} s` : 'latency: no encounter acknowledged',
  ];
  if (r.reconnect) {
    lines.push(
      `broker restart after ${r.reconnect.downS} s down: ${r.reconnect.backlogBatches} batches waiting; all connected in ${r.reconnect.allConnectedS ?? 'never'} s, drained in ${r.reconnect.drainS ?? 'never'} s`,
    );
  }
  if (r.atBackend) lines.push(`at the backend: ${r.atBackend.rows} rows; lost ${r.atBackend.lost}, duplicated ${r.atBackend.duplicates}, not ours ${r.atBackend.foreign}`);
  process.stdout.write(lines.join('\n') + '\n');
}

export function fleetSimCommand(): Command {
  return new Command('fleet-sim')
    .description('simulate a fleet of gateways (own keys, sessions, real uplink and codec) against Mosquitto and collectors; report loss, duplicates, latency')
    .option('--gateways <n>', 'gateways in the fleet', '100')
    .option('--minutes <m>', 'how long the fleet makes traffic', '5')
    .option('--speed <x>', "traffic: this many times the venue mix's business-hours rates", '1')
    .option('--seed <n>', 'seed of the traffic', '1')
    .option('--collectors <k>', '`vgw collect` processes to start, in one shared-subscription group', '1')
    .option('--database <db>', 'where the collectors store: an SQLite file or a postgres:// URL (default: an SQLite file in --dir)')
    .option('--postgres', 'start a private PostgreSQL for the collectors (needs the postgresql package)')
    .option('--broker <url>', 'an MQTT broker to use (default: a private Mosquitto, which --restart-broker-at can restart)')
    .option('--restart-broker-at <s>', 'stop the broker this many seconds into the run, then start it again (a reconnect storm)')
    .option('--broker-down-s <s>', 'how long the broker stays down', '5')
    .option('--commit-s <s>', "the gateways' store.checkpointS", '60')
    .option('--batch-age-s <s>', "the gateways' uplink.batchMaxAgeS", '30')
    .option('--dir <dir>', 'work folder (default: a temporary one, removed after)')
    .option('--backend-key-file <file>', "the backend key the collectors sign acks with, which the simulated gateways trust (default: a new one in the work folder); with --collectors 0, your collectors' collector.controlKeyFile")
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nExit codes: 0 nothing lost or doubled, 1 something was (or the fleet did not drain), 2 bad arguments.\nExamples:\n' +
        '  vgw fleet-sim --gateways 1000 --minutes 10 --collectors 2 --postgres --restart-broker-at 300\n' +
        '  vgw fleet-sim --gateways 50 --minutes 1 --speed 20 --commit-s 5 --batch-age-s 5 --json',
    )
    .action(async (opts: Options) => {
      let broker: LocalBroker | null = null;
      let postgres: LocalPostgres | null = null;
      const collectors: ChildProcess[] = [];
      let fleet: FleetSim | null = null;
      let workDir: string | null = null;
      let ownDir = false;
      try {
        const gateways = number(opts.gateways, '--gateways', 1, true);
        const minutes = number(opts.minutes, '--minutes', 0);
        const speed = number(opts.speed, '--speed', 0);
        const seed = number(opts.seed, '--seed', 0, true);
        const collectorCount = number(opts.collectors, '--collectors', 0, true);
        const downS = number(opts.brokerDownS, '--broker-down-s', 0);
        const commitIntervalS = number(opts.commitS, '--commit-s', 0.1);
        const batchMaxAgeS = number(opts.batchAgeS, '--batch-age-s', 0.1);
        const restartAt = opts.restartBrokerAt === undefined ? null : number(opts.restartBrokerAt, '--restart-broker-at', 0);
        if (restartAt !== null && opts.broker) throw new UsageError('--restart-broker-at: only the private Mosquitto can be restarted; leave out --broker');
        if (restartAt !== null && restartAt >= minutes * 60) throw new UsageError(`--restart-broker-at: ${restartAt} s is not within the run (--minutes ${minutes})`);
        if (opts.postgres && opts.database) throw new UsageError('--postgres: give either --postgres (a private server) or --database');
        if (collectorCount > 1 && !opts.postgres && !(opts.database && isPostgresUrl(opts.database))) throw new UsageError('--collectors: several collectors share a PostgreSQL database; give --database postgres://… or --postgres');
        if (collectorCount === 0 && !opts.database) throw new UsageError('--collectors 0: the collectors are yours, so name their database with --database to check it');
        ownDir = opts.dir === undefined;
        workDir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'vgw-fleet-'));
        mkdirSync(workDir, { recursive: true });
        const log = createLogger('error');
        if (!opts.broker) broker = await LocalBroker.start(join(workDir, 'broker'), 'max_connections -1\nmax_inflight_messages 100');
        const brokerUrl = opts.broker ?? broker!.url;
        let database = opts.database ?? join(workDir, 'collector.db');
        if (opts.postgres) {
          postgres = await LocalPostgres.start();
          database = await postgres.createDatabase('fleet');
        }
        const prefix = `fleet-${seed}/v3`;
        const controlKeyFile = opts.backendKeyFile ? resolve(opts.backendKeyFile) : join(workDir, 'backend.key');
        const control = new ControlSigner(opts.backendKeyFile ? loadBackendKeySeed(controlKeyFile) : writeNewBackendKey(controlKeyFile));
        fleet = new FleetSim({ brokerUrl, prefix, gateways, speed, seed, commitIntervalS, batchMaxAgeS, backendKeys: [control.key.publicKey] }, log);
        const registry = join(workDir, 'registry.json');
        writeFileSync(registry, JSON.stringify(fleet.records));
        for (let i = 0; i < collectorCount; i++) {
          const config = join(workDir, `collector-${i}.json`);
          writeFileSync(config, JSON.stringify({
            broker: { url: brokerUrl, clientId: `fleet-collector-${seed}-${i}`, reconnectS: 1, reconnectMaxS: 5 },
            topicPrefix: prefix,
            collector: { database, registry, controlKeyFile, http: { port: 0 }, ...(collectorCount > 1 ? { shareGroup: `fleet${seed}` } : {}) },
            log: { level: 'info' },
          }));
          collectors.push(await startCollector(config, String(i)));
        }
        await fleet.start();
        const runMs = minutes * 60_000;
        const startedAt = Date.now();
        if (restartAt !== null) {
          await sleep(restartAt * 1000);
          await fleet.restartBroker(broker!, downS, Math.max(60, runMs / 1000));
        }
        await sleep(Math.max(0, startedAt + runMs - Date.now()));
        const drained = await fleet.drain(300);
        await fleet.stop();
        for (const c of collectors) await stopChild(c);
        const report = fleet.report();
        const source = await openEncounterSource(database);
        report.atBackend = await fleet.verify((async function* () {
          for await (const e of source.encounters()) if (e.gateway?.startsWith('sim-gw-')) yield { gateway: e.gateway, id: e.id, tempId: e.tempId.toString('hex') };
        })());
        await source.close();
        if (opts.json) process.stdout.write(JSON.stringify({ ...report, drained, database: describeDatabase(database) }, null, 2) + '\n');
        else printReport(report, database);
        const ok = drained && report.atBackend.lost === 0 && report.atBackend.duplicates === 0 && report.atBackend.foreign === 0;
        if (!drained) process.stderr.write('vgw: the fleet did not drain within 300 s\n');
        process.exitCode = ok ? EXIT.ok : EXIT.failure;
      } catch (err) {
        process.exitCode = err instanceof UsageError ? EXIT.usage : EXIT.failure;
        for (const c of collectors) c.kill('SIGKILL');
        await fleet?.stop().catch(() => undefined);
        await broker?.stop();
        await postgres?.destroy();
        fail(err);
      }
      await broker?.stop();
      await postgres?.destroy();
      if (ownDir && workDir) rmSync(workDir, { recursive: true, force: true });
      process.exit(process.exitCode);
    });
}
